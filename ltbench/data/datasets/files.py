"""Datasets listed by split files (``relative/path label`` lines): ImageNet-LT, Places-LT, iNat 2018, any folder."""
import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ltbench.data.base import FileSplit, LTDataset
from ltbench.data.classnames import read_inat_categories, read_places_classnames, read_plain_classnames
from ltbench.data.split_files import read_split_file
from ltbench.core.errors import UserError
from ltbench.data.prompts import imagenet_clip_classnames
from ltbench.core.registry import DATASETS

IMAGENET_FILES = {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"}
PLACES_FILES = {"train": "Places_LT_train.txt", "val": "Places_LT_val.txt", "test": "Places_LT_test.txt"}
# iNat 2018 has no test labels: the literature reports on the val file, so it serves as both.
INAT_FILES = {"train": "iNaturalist18_train.txt", "val": "iNaturalist18_val.txt", "test": "iNaturalist18_val.txt"}


class _SplitFileMissing(UserError):
    """A split file that is not there: fatal for a run, only reported by `ltbench data check`."""


def _optional_path(value) -> Optional[Path]:
    return Path(value).expanduser() if value else None


def _standard_split_dir(options: dict, dataset: str, file_names: List[str]) -> Path:
    """--split-dir, else the data root: where the standard split files are looked for."""
    split_dir = _optional_path(options.get("split_dir")) or _optional_path(options.get("root"))
    if split_dir is None:
        raise UserError(f"{dataset}: no split directory; pass --split-dir DIR holding "
                        f"{', '.join(file_names)} (or --data-root if they lie in the image root)")
    return split_dir


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


def _standard_dataset(dataset: str, file_names: Dict[str, str], class_names: List[str], options: dict,
                      require_all_splits: bool, split_dir: Path) -> LTDataset:
    names = list(dict.fromkeys(file_names.values()))  # train, val, test order; iNat's val file once
    hint = f"pass --split-dir DIR holding {', '.join(names)}; see `ltbench data check {dataset}`"
    list_files = {split: split_dir / file_name for split, file_name in file_names.items()}
    return _load_splits(dataset, class_names, list_files, options, require_all_splits, hint)


def _check_name_count(names_file: Path, found: int, dataset: str, expected: int):
    if found != expected:
        raise UserError(f"{names_file} has {found} names but {dataset} has {expected} classes; "
                        f"use the class-names file distributed with the {dataset} split files")


@DATASETS.register_module(name="imagenet_lt")
def build_imagenet_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """ImageNet-LT (OLTR split files): 1000 classes, CLIP's curated ImageNet names; test = ILSVRC2012 val."""
    split_dir = _standard_split_dir(options, "imagenet_lt", list(IMAGENET_FILES.values()))
    class_names = imagenet_clip_classnames()
    wnid_file = split_dir / "classnames.txt"
    if wnid_file.is_file():
        # Prompts use CLIP's names; the distributed `wnid name` file only confirms the class count.
        _check_name_count(wnid_file, len(read_plain_classnames(wnid_file)), "imagenet_lt", len(class_names))
    dataset = _standard_dataset("imagenet_lt", IMAGENET_FILES, class_names, options, require_all_splits, split_dir)
    dataset.notes = {
        "layout": "image root holds train/<wnid>/ (ILSVRC2012 train) and val/<wnid>/ (ILSVRC2012 val)",
        "test": "ILSVRC2012 val, read from val/<wnid>/: missing test images usually mean the val folder "
                "was not sorted into wnid folders",
        "val": "20 images per class taken from ILSVRC2012 train",
    }
    return dataset


@DATASETS.register_module(name="places_lt")
def build_places_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """Places-LT (OLTR split files): 365 scene classes from Places365-Standard; test = Places365 val."""
    split_dir = _standard_split_dir(options, "places_lt", list(PLACES_FILES.values()) + ["classnames.txt"])
    names_file = split_dir / "classnames.txt"
    class_names = read_places_classnames(names_file)
    _check_name_count(names_file, len(class_names), "places_lt", 365)
    dataset = _standard_dataset("places_lt", PLACES_FILES, class_names, options, require_all_splits, split_dir)
    dataset.notes = {
        "layout": "image root holds train/<folder>/ and val/<folder>/ named as in classnames.txt "
                  "(e.g. train/apartment_building-outdoor/), Places365-Standard 256x256 images",
        "test": "Places365-Standard val, read from val/<folder>/: its download (val_256) is one flat "
                "folder, so missing test images usually mean it was not sorted into class folders",
        "val": "20 images per class taken from Places365 train",
    }
    return dataset


@DATASETS.register_module(name="inat2018")
def build_inat2018(options: dict, require_all_splits: bool = True) -> LTDataset:
    """iNaturalist 2018: 8142 species (Latin names); the val file is the test split, as in the literature."""
    split_dir = _standard_split_dir(options, "inat2018", list(dict.fromkeys(INAT_FILES.values())) + ["categories.json"])
    names_file = split_dir / "categories.json"
    class_names = read_inat_categories(names_file)
    _check_name_count(names_file, len(class_names), "inat2018", 8142)
    dataset = _standard_dataset("inat2018", INAT_FILES, class_names, options, require_all_splits, split_dir)
    dataset.notes = {
        "layout": "image root holds train_val2018/<supercategory>/<id>/ as extracted from the 2018 release",
        "test": "iNaturalist18_val.txt: the 2018 test labels are not public, so val is also the test split",
    }
    return dataset


@DATASETS.register_module(name="folder_lt")
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
    names_file = option_path("classnames")
    class_names = read_plain_classnames(names_file)
    _check_unique_names(names_file, class_names)
    list_files = {split: option_path(f"{split}_list") for split in ("train", "val", "test")}
    if list_files["val"] is None:
        del list_files["val"]
    hint = "check dataset.train_list / val_list / test_list (relative paths are resolved against " \
           f"--split-dir {base}); see `ltbench data check folder_lt`"
    dataset = _load_splits("folder_lt", class_names, list_files, options, require_all_splits, hint)
    _check_names_are_used(names_file, class_names, dataset)
    if "val" not in list_files:
        _use_test_as_val(dataset, "no dataset.val_list given: val is the test split")
    pool_file = option_path("pool_list")
    if pool_file is not None:
        _add_pool(dataset, pool_file, _optional_path(options.get("root")), require_all_splits, hint)
    return dataset


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


def _add_pool(dataset: LTDataset, pool_file: Path, root: Optional[Path], require_all_splits: bool, hint: str):
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
    dataset.notes["pool"] = "unlabeled pool from dataset.pool_list; its labels (-1 = unknown) are hidden ground truth"
