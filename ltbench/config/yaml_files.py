"""Reading ltbench's YAML: values, the line each key is on, and the source tag of each value.

ltbench's YAML marks where each value comes from with a tag in its comment: ``[paper]``,
``[code]`` or ``[ours]`` (also ``[paper, code]``, ``[ours: the reason]``). The tags are data, not
decoration: the option tables (``ltbench list methods --options``, the docs) show them, and a
test holds every shipped value to having one. A value's tag is the first tag of its comment: the
text after it on its line and the comment lines below it indented further (a wrapped comment),
or, for a section, the comment lines between its key and its first entry, or else the comment
lines right above it at its own indentation (not the file's header); a value with none takes its
section's.
"""
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import yaml

from ltbench.core.errors import UserError

SOURCE_TAGS = ("paper", "code", "ours")
# The first bracket that opens with a tag word: [paper], [paper, code], [ours: why], [code option].
_TAG_GROUP = re.compile(r"\[((?:paper|code|ours)\b[^\]]*)\]")
_TAG_WORD = re.compile(r"\b(paper|code|ours)\b")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _yaml_error(error: yaml.YAMLError, source: str) -> UserError:
    mark = getattr(error, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return UserError(f"{where}: invalid YAML: {problem}")


def parse_yaml_text(text: str, source: str):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise _yaml_error(error, source) from None


def tags_in(comment: str) -> Tuple[str, ...]:
    """The source tags of the first tag group of a comment: '[paper, code] ...' -> ('paper', 'code');
    the words after a colon are the reason ('[ours: Imbalance-VLM pairs ...]' -> ('ours',))."""
    match = _TAG_GROUP.search(comment or "")
    if not match:
        return ()
    words = _TAG_WORD.findall(match.group(1).split(":")[0])
    return tuple(dict.fromkeys(words))


@dataclass(frozen=True)
class KeyNote:
    """Where a key of a YAML file is (1-based line), the tags of its value (its own, else its
    section's; () when neither has one) and its own comment (why the value is what it is)."""

    line: int
    tags: Tuple[str, ...] = ()
    comment: str = ""


@dataclass
class YamlDoc:
    """A YAML file's mapping, and for each of its keys (a tuple path) its line and tags."""

    path: Path
    data: dict
    notes: Dict[Tuple[str, ...], KeyNote] = field(default_factory=dict)

    def note(self, keys: Tuple[str, ...]) -> Optional[KeyNote]:
        """The note of a key, or of the nearest section above it that has one."""
        while keys:
            if keys in self.notes:
                return self.notes[keys]
            keys = keys[:-1]
        return None

    def where(self, keys: Tuple[str, ...]) -> str:
        note = self.note(keys)
        return f"{self.path}:{note.line}" if note else str(self.path)


def _comment_of(line: str) -> Optional[str]:
    """The comment of a line, or None (a '#' inside quotes is not one: the loader has read the
    value already, so only a '#' after whitespace or at the start starts a comment)."""
    match = re.search(r"(^|\s)#(.*)$", line)
    return match.group(2) if match else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _own_comment(lines, index: int, column: int, is_section: bool) -> str:
    """The comment text that belongs to the key on line `index` at `column`: after it on its
    line, then the comment-only lines below it (indented further than the key; for a section,
    any comment-only lines before its first entry)."""
    parts = [_comment_of(lines[index]) or ""]
    for line in lines[index + 1:]:
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        if _indent(line) <= column and not is_section:
            break
        parts.append(stripped[1:])
    return " ".join(parts)


def _leading_comment(lines, index: int, column: int) -> str:
    """Comment-only lines right above line `index`, at the key's own column (no blank line
    between); not the file's header, which speaks of the whole file."""
    parts = []
    for above in range(index - 1, -1, -1):
        stripped = lines[above].strip()
        if not stripped.startswith("#") or _indent(lines[above]) != column:
            break
        if above == 0:
            return ""
        parts.append(stripped[1:])
    return " ".join(reversed(parts))


def _notes(node, lines, path=(), inherited=(), notes=None) -> Dict[Tuple[str, ...], KeyNote]:
    notes = {} if notes is None else notes
    if not isinstance(node, yaml.MappingNode):
        return notes
    for key_node, value_node in node.value:
        keys = path + (str(key_node.value),)
        line, column = key_node.start_mark.line, key_node.start_mark.column
        is_section = isinstance(value_node, yaml.MappingNode) and value_node.start_mark.line > line
        comment = " ".join(_own_comment(lines, line, column, is_section).split())
        leading = " ".join(_leading_comment(lines, line, column).split())
        tags = tags_in(comment) or tags_in(leading) or inherited
        notes[keys] = KeyNote(line + 1, tags, comment or leading)
        _notes(value_node, lines, keys, tags, notes)
    return notes


def parse_yaml_doc(text: str, path) -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise _yaml_error(error, str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return YamlDoc(Path(path), data, _notes(node, text.splitlines()))


# path -> (its text, its YamlDoc): one resolve reads the same few files, and PyYAML's
# pure-Python parser costs milliseconds a file. Keyed by the text itself, not by a modification
# time, which a file rewritten within the same clock tick would share.
_parsed = {}


def load_yaml_doc(path, copied: bool = True) -> YamlDoc:
    """A YAML file as a YamlDoc, parsed once while its text is the same; the caller owns the
    copy of the data it gets (the notes are shared, read-only). copied=False: the cached doc
    itself, for a caller that only reads it (the resolver, which copies what it keeps)."""
    text = Path(path).read_text()
    cached = _parsed.get(str(path))
    if cached is None or cached[0] != text:
        cached = _parsed[str(path)] = (text, parse_yaml_doc(text, path))
    doc = cached[1]
    return YamlDoc(doc.path, copy.deepcopy(doc.data), doc.notes) if copied else doc


def load_yaml(path) -> dict:
    """The mapping a YAML file holds ({} when empty); the caller owns the copy it gets."""
    return load_yaml_doc(path).data
