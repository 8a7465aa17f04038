"""Class-name files of the long-tailed datasets, read into prompt-ready names in class-index order."""
import json
from pathlib import Path
from typing import List

from ltbench.core.errors import UserError
from ltbench.data.prompts import imagenet_clip_classnames

# Suffixes that are nouns rather than qualifiers read after the place, not before it
# ('elevator-door' -> 'elevator door', 'subway_station-platform' -> 'subway station platform').
NOUN_SUFFIXES = {"door", "platform", "shop"}
# Folder names the prefix rule would turn into awkward English.
READABLE_OVERRIDES = {"underwater-ocean_deep": "deep ocean underwater", "temple-asia": "asian temple"}


def places_readable(raw: str) -> str:
    """'apartment_building-outdoor' -> 'outdoor apartment building', 'arena-hockey' -> 'hockey arena'.

    Places365 folder names put a qualifier after the dash; in English it reads as a prefix.
    """
    if raw in READABLE_OVERRIDES:
        return READABLE_OVERRIDES[raw]
    base, _, qualifier = raw.partition("-")
    if not qualifier:
        words = [base]
    elif qualifier in NOUN_SUFFIXES:
        words = [base, qualifier]
    else:
        words = [qualifier, base]
    return " ".join(word.replace("_", " ") for word in words)


def _read_lines(path: Path, what: str) -> List[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_places_classnames(path: Path) -> List[str]:
    """Readable Places names from lines 'raw_name raw_name' (or 'raw_name'); line i is class i."""
    names = []
    for line_number, line in enumerate(_read_lines(path, "Places class-names"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise UserError(
                f"{path}:{line_number}: expected 'raw_name' or 'raw_name raw_name', got '{line.strip()[:80]}'"
            )
        names.append(places_readable(fields[0]))
    if not names:
        raise UserError(f"{path}: the class-names file lists no classes")
    return names


def read_inat_categories(path: Path) -> List[str]:
    """Latin names from iNaturalist's categories.json (a list of {'id': label, 'name': ...}), by id."""
    path = Path(path)
    text = "\n".join(_read_lines(path, "iNaturalist categories"))
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: expected a non-empty JSON list of {{'id': ..., 'name': ...}} entries")
    names_by_id = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or "name" not in entry:
            raise UserError(f"{path}: entry {position} has no integer 'id' and 'name': {str(entry)[:80]}")
        names_by_id[entry["id"]] = str(entry["name"])
    # The id is the label in the split files, so the ids must be exactly the class indices.
    if sorted(names_by_id) != list(range(len(entries))):
        raise UserError(
            f"{path}: category ids must be 0..{len(entries) - 1}, each once; "
            f"use the categories.json of the iNaturalist 2018 release"
        )
    return [names_by_id[index] for index in range(len(entries))]


def read_plain_classnames(path: Path) -> List[str]:
    """One class name per line (line i = class i); blank lines are ignored."""
    names = [line.strip() for line in _read_lines(path, "class-names") if line.strip()]
    if not names:
        raise UserError(f"{path}: the class-names file lists no classes")
    return names


# How a split-file dataset's class-names file is read, by the name its definition gives
# (split_files.class_names.reader in datasets/<name>.yaml).
CLASS_NAME_READERS = {
    "plain": read_plain_classnames,
    "places": read_places_classnames,
    "inat_categories": read_inat_categories,
}
# Name lists a definition may give the prompts instead of its file's names
# (split_files.class_names.names): the file, when there is one, then only confirms the count.
BUILTIN_CLASS_NAMES = {"imagenet_clip": imagenet_clip_classnames}
