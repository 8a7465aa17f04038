"""The one builder of datasets listed by split files (``relative/path label`` lines).

``build_split_file_dataset`` reads the split files and the class names of one dataset and checks
them. Two kinds of dataset use it: those a YAML file defines (the ``split_files:`` section of
datasets/<name>.yaml, see definitions.py: ImageNet-LT, Places-LT, iNaturalist 2018 and any a
user or a plug-in adds), whose file names are fixed, and ``folder_lt``, whose files are options
of the run (dataset.train_list, ...).
"""
import dataclasses
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ltbench.config.options import Option, declare_options
from ltbench.core.errors import UserError
from ltbench.core.registry import DATASETS
from ltbench.data.base import FileSplit, LTDataset
from ltbench.data.classnames import BUILTIN_CLASS_NAMES, CLASS_NAME_READERS
from ltbench.data.split_files import read_split_file

# The options of a split-file dataset's `dataset` section, besides root and split_dir (every
# dataset's); their values: the dataset's YAML.
SPLIT_FILE_OPTIONS = {
    "allow_duplicates": Option(bool, False, source="ours",
                               help="an image listed twice in a split file counts twice (false: an error)"),
}
FOLDER_OPTIONS = {
    **SPLIT_FILE_OPTIONS,
    **{f"{split}_list": Option(str, nullable=True, help=f"the {split} split file, `relative/path label` lines{note}")
       for split, note in (("train", " (required)"), ("val", " (null: val is the test split)"),
                           ("test", " (required)"), ("pool", " (an unlabeled pool; labels -1 where unknown)"))},
    "classnames": Option(str, nullable=True, help="the class-names file, one name per line (required)"),
}
# The splits a split-file dataset may list: train and test always, val (else val is the test
# split) and an unlabeled pool where it has them.
SPLITS = ("train", "val", "test", "pool")
REQUIRED_SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ClassNames:
    """Where a split-file dataset's class names come from: ``file`` (in the split folder) read by
    ``reader`` (a key of CLASS_NAME_READERS), or ``names`` (a key of BUILTIN_CLASS_NAMES) for the
    prompts, the file then being optional and only confirming the count."""

    file: Optional[str] = None
    reader: str = "plain"
    names: Optional[str] = None


class _SplitFileMissing(UserError):
    """A split file that is not there: fatal for a run, only reported by `ltbench data check`."""


def _optional_path(value) -> Optional[Path]:
    return Path(value).expanduser() if value else None


def split_folder(options: dict, dataset: str, file_names: List[str]) -> Path:
    """--split-dir, else the data root: where a defined dataset's split files are looked for."""
    split_dir = _optional_path(options.get("split_dir")) or _optional_path(options.get("root"))
    if split_dir is None:
        raise UserError(f"{dataset}: no split directory; pass --split-dir DIR holding "
                        f"{', '.join(file_names)} (or --data-root if they lie in the image root)")
    return split_dir


def build_split_file_dataset(dataset: str, files: Mapping[str, Path], class_names: ClassNames, folder: Path,
                             options: dict, require_all_splits: bool, missing_hint: str, val_note: str,
                             expected: Optional[Mapping[str, int]] = None,
                             notes: Optional[Mapping[str, str]] = None, pool_note: str = "") -> LTDataset:
    """The dataset `dataset` of split files `files` (split -> path; train and test, optionally val
    and pool) and `class_names` (their file relative to `folder`).

    A missing split file raises, or with require_all_splits=False is recorded for `data check`
    (missing_hint ends its message). Without a val file val is the test split (`val_note` says
    so); pool_note says where the pool comes from. expected: 'classes' and split -> images the definition promises; the class count is
    checked here, the image counts by `data check`. Without a class count, the names must be used
    by the labels (more names would train a head wider than the data)."""
    expected = dict(expected or {})
    names, names_file = _read_class_names(dataset, class_names, folder, expected.get("classes"))
    list_files = {split: Path(files[split]) for split in ("train", "val", "test") if split in files}
    data = _load_splits(dataset, names, list_files, options, require_all_splits, missing_hint)
    data.notes = dict(notes or {})
    data.expected_counts = expected
    if "classes" not in expected and names_file is not None:
        _check_names_are_used(names_file, names, data)
    if "val" not in files:
        _use_test_as_val(data, val_note)
    if "pool" in files:
        _add_pool(data, Path(files["pool"]), _optional_path(options.get("root")), require_all_splits, missing_hint,
                  pool_note or f"from {Path(files['pool']).name}")
    return data


def _read_class_names(dataset: str, spec: ClassNames, folder: Path,
                      expected_classes: Optional[int]) -> Tuple[List[str], Optional[Path]]:
    """(class names, the file they were read from or None)."""
    names_file = folder / spec.file if spec.file else None
    read = CLASS_NAME_READERS[spec.reader]
    if spec.names is not None:
        names = list(BUILTIN_CLASS_NAMES[spec.names]())
        count = expected_classes if expected_classes is not None else len(names)
        if len(names) != count:
            raise UserError(f"{dataset}: the built-in class names '{spec.names}' are {len(names)}, but the dataset "
                            f"has {count} classes; fix split_files.class_names or split_files.expected.classes")
        if names_file is not None and names_file.is_file():
            # The distributed names file (ImageNet's `wnid name` lines) only confirms the class count.
            _check_name_count(names_file, len(read(names_file)), dataset, count)
        return names, None
    names = read(names_file)
    if expected_classes is not None:
        _check_name_count(names_file, len(names), dataset, expected_classes)
    _check_unique_names(names_file, names)
    return names, names_file


def _load_splits(dataset: str, class_names: List[str], list_files: Dict[str, Path], options: dict,
                 require_all_splits: bool, missing_hint: str) -> LTDataset:
    """Read each split file; a missing one raises, or with require_all_splits=False is recorded."""
    root = _optional_path(options.get("root"))
    splits, hashes, missing = {}, {}, {}
    for split, list_file in list_files.items():
        try:
            splits[split] = _read_split(split, list_file, len(class_names), root, missing_hint,
                                        bool(options.get("allow_duplicates", False)))
            hashes[split] = splits[split].list_sha256
        except _SplitFileMissing as error:
            if require_all_splits:
                raise
            missing[split] = str(error)
    return LTDataset(name=dataset, class_names=class_names, splits=splits, split_files=hashes, missing=missing)


def _read_split(split: str, list_file: Path, num_classes: int, root: Optional[Path], missing_hint: str,
                allow_duplicates: bool = False):
    if not list_file.is_file():
        where = "" if list_file.parent.is_dir() else f" (folder {list_file.parent} does not exist)"
        raise _SplitFileMissing(f"{split} split file not found: {list_file}{where}; {missing_hint}")
    paths, labels, sha256 = read_split_file(list_file, num_classes, allow_duplicates)
    return FileSplit(name=split, root=root, paths=paths, labels=labels, list_file=list_file, list_sha256=sha256)


def _check_name_count(names_file: Path, found: int, dataset: str, expected: int):
    if found != expected:
        raise UserError(f"{names_file} has {found} names but {dataset} has {expected} classes; "
                        f"use the class-names file distributed with the {dataset} split files")


@DATASETS.register_module(name="folder_lt")
@declare_options(FOLDER_OPTIONS)
def build_folder_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """Any long-tailed dataset given by your own split files and a class-names file (one name per line)."""
    # Relative list paths are resolved against --split-dir (default: the data root).
    base = _optional_path(options.get("split_dir")) or _optional_path(options.get("root")) or Path()

    def option_path(key: str) -> Optional[Path]:
        value = _optional_path(options.get(key))
        return base / value if value is not None else None

    for required in ("train_list", "test_list", "classnames"):
        if option_path(required) is None:
            raise UserError(f"folder_lt: set dataset.{required} in the config "
                            f"(a file path; relative paths are resolved against --split-dir)")
    files = {split: option_path(f"{split}_list") for split in SPLITS}
    hint = "check dataset.train_list / val_list / test_list (relative paths are resolved against " \
           f"--split-dir {base}); see `ltbench data check folder_lt`"
    return build_split_file_dataset(
        "folder_lt", {split: path for split, path in files.items() if path is not None},
        ClassNames(file=str(_optional_path(options["classnames"]))), base, options, require_all_splits, hint,
        val_note="no dataset.val_list given: val is the test split", pool_note="from dataset.pool_list")


def _check_unique_names(names_file: Path, class_names: List[str]):
    """Two classes of one name cannot be told apart by a prompt: an error naming both."""
    first = {}
    for index, name in enumerate(class_names):
        if name in first:
            raise UserError(f"{names_file}: class name '{name}' is given twice (classes {first[name]} and {index}, "
                            "counting non-blank lines from 0); class names must be unique")
        first[name] = index


def _check_names_are_used(names_file: Path, class_names: List[str], dataset: LTDataset):
    """More names than the split files have labels would train a head wider than the data."""
    labels = [split.labels for split in dataset.splits.values() if len(split.labels)]
    if not labels:
        return
    highest = int(max(int(np.max(split_labels)) for split_labels in labels))
    if highest + 1 < len(class_names):
        raise UserError(f"{names_file} lists {len(class_names)} class names, but the split files use labels "
                        f"0..{highest} only; remove the extra names or check that the files belong together")


def _use_test_as_val(dataset: LTDataset, note: str):
    dataset.notes["val"] = note
    if "test" in dataset.splits:
        dataset.splits["val"] = dataclasses.replace(dataset.splits["test"], name="val")
        dataset.split_files["val"] = dataset.split_files["test"]
    else:
        dataset.missing["val"] = f"val is the test split, which is missing: {dataset.missing['test']}"


def _add_pool(dataset: LTDataset, pool_file: Path, root: Optional[Path], require_all_splits: bool, hint: str,
              source: str):
    """Pool labels are hidden ground truth, or -1 where unknown, so they are checked against -1..C-1."""
    try:
        pool = _read_split("pool", pool_file, None, root, hint)
    except _SplitFileMissing as error:
        if require_all_splits:
            raise
        dataset.missing["pool"] = str(error)
        return
    bad = np.flatnonzero((pool.labels < -1) | (pool.labels >= dataset.num_classes))
    if len(bad):
        raise UserError(f"{pool_file}: pool label {int(pool.labels[bad[0]])} is outside -1..{dataset.num_classes - 1} "
                        f"(-1 = unknown, else a class index of {dataset.num_classes} class names)")
    dataset.splits["pool"] = pool
    dataset.split_files["pool"] = pool.list_sha256
    dataset.notes["pool"] = f"unlabeled pool {source}; its labels (-1 = unknown) are hidden ground truth"
