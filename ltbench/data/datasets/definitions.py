"""Datasets defined by YAML: a ``split_files:`` section in datasets/<name>.yaml, on the config
search path (ltbench.config.config_search_path), makes <name> a split-file dataset, built by the
one split-file builder (files.build_split_file_dataset)::

    split_files:
      description: One line for `ltbench list datasets`.
      files: {train: a_train.txt, val: a_val.txt, test: a_test.txt}  # val, pool optional; in --split-dir
      class_names: {file: names.txt, reader: plain}     # or names: imagenet_clip (the file then optional)
      expected: {classes: 5, train: 310, val: 50, test: 100}  # checked by `ltbench data check`
      layout: what the image root holds                 # a note of `data check`
      notes: {test: where the test images come from}    # more notes, by topic

The section says what the data is, not how a run treats it: it stays out of the run's config
(and hash); the record keeps the split files' hashes and the class names. Before every lookup
of DATASETS each such file is registered under its file name, and one gone from the search path
is unregistered, so a file added there is a dataset at once (``register_defined_datasets``).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mmengine.registry import Registry

from ltbench.config import DATASET_DEFINITION_KEY, config_search_path, deep_merge, load_yaml
from ltbench.config.options import Option, declare_options
from ltbench.core.errors import UserError, close_matches_hint
from ltbench.core.registry import DATASETS, fill_on_lookup
from ltbench.data.base import LTDataset
from ltbench.data.classnames import BUILTIN_CLASS_NAMES, CLASS_NAME_READERS
from ltbench.data.datasets.files import (
    REQUIRED_SPLITS,
    SPLIT_FILE_OPTIONS,
    SPLITS,
    ClassNames,
    build_split_file_dataset,
    split_folder,
)

SECTION_KEYS = ("description", "files", "class_names", "expected", "layout", "notes")
CLASS_NAME_KEYS = ("file", "reader", "names")
EXPECTED_KEYS = ("classes",) + SPLITS
COUNT = Option(int, ge=1)  # an expected count of classes or lines


@dataclass(frozen=True)
class SplitFileDefinition:
    """One dataset's ``split_files`` section, checked; ``build`` is its DATASETS builder."""

    name: str
    source: Path  # the file the section was read from (the first on the search path that has one)
    description: str
    files: Dict[str, str]
    class_names: ClassNames
    expected: Dict[str, int] = field(default_factory=dict)
    notes: Dict[str, str] = field(default_factory=dict)

    def build(self, options: dict, require_all_splits: bool = True) -> LTDataset:
        file_names = list(dict.fromkeys(self.files[split] for split in SPLITS if split in self.files))
        names_file = [self.class_names.file] if self.class_names.file and self.class_names.names is None else []
        folder = split_folder(options, self.name, file_names + names_file)
        hint = f"pass --split-dir DIR holding {', '.join(file_names)}; see `ltbench data check {self.name}`"
        return build_split_file_dataset(
            self.name, {split: folder / file for split, file in self.files.items()}, self.class_names, folder,
            options, require_all_splits, hint, val_note=f"{self.name} has no val split file: val is the test split",
            expected=self.expected, notes=self.notes)


def parse_definition(name: str, section, source: Path) -> SplitFileDefinition:
    """The checked ``split_files`` section of datasets/<name>.yaml: a one-line error naming the
    file and key for anything else."""
    where = f"{source}: {DATASET_DEFINITION_KEY}"
    section = _mapping(section, where, SECTION_KEYS)
    description = section.get("description")
    if not isinstance(description, str) or not description.strip():
        raise UserError(f"{where}.description: give one line saying what the dataset is (`ltbench list datasets` "
                        "shows it)")
    files = _mapping(section.get("files"), f"{where}.files", SPLITS)
    for split in REQUIRED_SPLITS:
        if split not in files:
            raise UserError(f"{where}.files: name the {split} split file ({split}: FILE, relative to --split-dir)")
    for split, file_name in files.items():
        if not isinstance(file_name, str) or not file_name.strip():
            raise UserError(f"{where}.files.{split}: expected a file name, got {file_name!r}")
    expected = _mapping(section.get("expected") or {}, f"{where}.expected", EXPECTED_KEYS)
    for key, count in expected.items():
        if COUNT.problem(count) is not None:
            raise UserError(f"{where}.expected.{key}: expected a whole number >= 1, got {count!r}")
    notes = {"layout": section["layout"]} if section.get("layout") is not None else {}
    notes.update(_mapping(section.get("notes") or {}, f"{where}.notes", None))
    for key, note in notes.items():
        if not isinstance(note, str):
            raise UserError(f"{where}.notes.{key}: expected a line of text, got {note!r}")
    return SplitFileDefinition(name=name, source=source, description=description.strip(), files=dict(files),
                               class_names=_class_names(section.get("class_names"), f"{where}.class_names"),
                               expected=dict(expected), notes=notes)


def _class_names(section, where: str) -> ClassNames:
    section = _mapping(section, where, CLASS_NAME_KEYS)
    reader = section.get("reader", "plain")
    if reader not in CLASS_NAME_READERS:
        raise UserError(f"{where}.reader: unknown reader {reader!r}{close_matches_hint(str(reader), CLASS_NAME_READERS)}")
    names = section.get("names")
    if names is not None and names not in BUILTIN_CLASS_NAMES:
        raise UserError(f"{where}.names: unknown name list {names!r}{close_matches_hint(str(names), BUILTIN_CLASS_NAMES)}")
    file_name = section.get("file")
    if file_name is not None and (not isinstance(file_name, str) or not file_name.strip()):
        raise UserError(f"{where}.file: expected a file name, got {file_name!r}")
    if file_name is None and names is None:
        raise UserError(f"{where}: name the class-names file (file: FILE, relative to --split-dir)")
    return ClassNames(file=file_name, reader=reader, names=names)


def _mapping(value, where: str, allowed: Optional[Tuple[str, ...]]) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping of keys, got {value!r}")
    for key in value:
        if allowed is not None and key not in allowed:
            raise UserError(f"{where}: unknown key '{key}'{close_matches_hint(str(key), allowed)}")
    return value


# name -> (its files with their contents, its builder or None): a definition is parsed again
# only when one of its files changed (by content: a modification time may not tell).
_parsed: Dict[str, Tuple[tuple, object]] = {}
# name -> the builder registered for it from YAML (to unregister it when its file is gone).
_registered: Dict[str, object] = {}


def _definition_files() -> Dict[str, List[Path]]:
    """Dataset name -> its datasets/<name>.yaml files along the search path, the first winning."""
    found: Dict[str, List[Path]] = {}
    for folder in config_search_path():
        for path in sorted((folder / "datasets").glob("*.yaml")):
            found.setdefault(path.stem, []).append(path)
    return found


def _builder_of(name: str, paths: List[Path]):
    """The builder of the dataset `paths` define, or None when none of them has a split_files section."""
    section, source = None, None
    for path in reversed(paths):  # the later ones first, so the earlier ones win
        data = load_yaml(path)
        if DATASET_DEFINITION_KEY in data:
            part = data[DATASET_DEFINITION_KEY]
            section = deep_merge(section, part) if isinstance(section, dict) and isinstance(part, dict) else part
            source = path
    if source is None:
        return None
    definition = parse_definition(name, section, source)

    @declare_options(SPLIT_FILE_OPTIONS)
    def build(options: dict, require_all_splits: bool = True) -> LTDataset:
        return definition.build(options, require_all_splits)

    build.__doc__ = definition.description
    build.__name__ = f"build_{name}"
    build.definition = definition
    return build


def register_defined_datasets(registry: Registry):
    """Register every YAML-defined dataset of the search path in `registry` (DATASETS), and
    unregister those whose file is gone. A definition whose name a Python builder holds is an
    error naming both."""
    current = {}
    for name, paths in _definition_files().items():
        stamp = tuple((str(path), path.read_bytes()) for path in paths)
        if _parsed.get(name, (None,))[0] != stamp:
            _parsed[name] = (stamp, _builder_of(name, paths))
        if _parsed[name][1] is not None:
            current[name] = _parsed[name][1]
    for name, builder in list(_registered.items()):
        if current.get(name) is not builder and registry.module_dict.get(name) is builder:
            registry.module_dict.pop(name)
        _registered.pop(name)
    for name, builder in current.items():
        held = registry.module_dict.get(name)
        if held is not None and held is not builder:
            raise UserError(f"{builder.definition.source} defines the split-file dataset '{name}', but "
                            f"{getattr(held, '__module__', '?')} registers a builder of that name; rename one of them")
        registry.register_module(name=name, module=builder, force=True)
        _registered[name] = builder


fill_on_lookup(DATASETS, register_defined_datasets)
