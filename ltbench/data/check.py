"""`ltbench data check`: what a dataset's splits hold and how many listed images are missing on disk."""
import os
import posixpath
from pathlib import Path
from typing import Dict, FrozenSet, List

import numpy as np
from tabulate import tabulate

from ltbench.data.base import FileSplit, LTDataset, Split
from ltbench.metrics import GROUPS, group_sizes

SPLIT_ORDER = ("train", "val", "test", "pool")


def missing_images(split: FileSplit) -> int:
    """How many listed images are not on disk, without opening them.

    Each directory is listed once and the file names are looked up in that listing: a
    stat per image takes minutes on network file systems for the 400k+ images of iNat.
    """
    if split.root is None:
        raise ValueError(f"split '{split.name}' has no image root to check")
    listings: Dict[str, FrozenSet[str]] = {}
    missing = 0
    for relative in split.paths:
        directory, file_name = posixpath.split(relative)
        if directory not in listings:
            listings[directory] = _list_directory(Path(split.root) / directory)
        missing += file_name not in listings[directory]
    return missing


def _list_directory(directory: Path) -> FrozenSet[str]:
    try:
        with os.scandir(directory) as entries:
            return frozenset(entry.name for entry in entries)
    except OSError:  # absent, not a folder or unreadable: none of its images can be loaded
        return frozenset()


def _missing_cell(split: Split) -> str:
    if not isinstance(split, FileSplit):
        return "- (in memory)"
    if split.root is None:
        return "not checked (no data root)"
    if not Path(split.root).is_dir():
        return "not checked (data root does not exist)"
    count = missing_images(split)
    return f"{count} of {len(split)}" if count else "0"


def _split_row(split: Split, train_counts, rule: str) -> List:
    labels = np.asarray(split.labels)
    counts = np.bincount(labels[labels >= 0])  # -1 marks an unknown pool label
    present = counts[counts > 0]
    if len(present):
        sizes = [len(present), int(present.max()), int(present.min()), f"{present.max() / present.min():.1f}"]
    else:
        sizes = [0, "-", "-", "-"]
    if train_counts is None:
        groups = ["-"] * len(GROUPS)
    else:
        # The split's classes, grouped by their training counts.
        sizes_by_group = group_sizes(train_counts[np.flatnonzero(counts)], rule)
        groups = [sizes_by_group[group] for group in GROUPS]
    return [split.name, len(split), *sizes, *groups, _missing_cell(split)]


def check_report(dataset: LTDataset, shot_rule: str = "standard") -> str:
    """Plain-text report: per split images, classes, class sizes, shot groups and missing images."""
    lines = [f"dataset: {dataset.name} ({dataset.num_classes} classes)"]
    roots = {split.root for split in dataset.splits.values() if isinstance(split, FileSplit)}
    for root in sorted(roots, key=str):
        if root is None:
            lines.append("data root: not given (pass --data-root to count missing images)")
        else:
            lines.append(f"data root: {root}" + ("" if Path(root).is_dir() else " (does not exist)"))
    if dataset.notes:
        lines += ["notes:"] + [f"  {key}: {note}" for key, note in dataset.notes.items()]

    # Groups are defined by training counts (or the dataset's reference profile, see its notes),
    # so every split is counted against them, as the runs' metrics are.
    train_counts = dataset.grouping_counts if "train" in dataset.splits else None
    rows = [_split_row(dataset.splits[name], train_counts, shot_rule) for name in _ordered(dataset.splits)]
    headers = ["split", "images", "classes", "max/class", "min/class", "imbalance",
               *GROUPS, "missing images"]
    lines += ["", f"shot groups by training images per class (rule '{shot_rule}')",
              tabulate(rows, headers=headers, disable_numparse=True)]
    for name in _ordered(dataset.missing):
        lines.append(f"{name}: NOT LOADED: {dataset.missing[name]}")
    lines += _expected_lines(dataset)
    return "\n".join(lines)


def _expected_lines(dataset: LTDataset) -> List[str]:
    """What the dataset's definition promises (classes, images per split) against what was read:
    another version of a split file, or a truncated copy, shows here before any run."""
    if not dataset.expected_counts:
        return []
    lines = ["", "expected counts (the dataset's definition):"]
    for key in ["classes"] + _ordered(key for key in dataset.expected_counts if key != "classes"):
        if key not in dataset.expected_counts:
            continue
        expected = dataset.expected_counts[key]
        if key == "classes":
            found = dataset.num_classes
        elif key in dataset.splits:
            found = len(dataset.splits[key])
        else:
            lines.append(f"  {key}: {expected} images expected, not loaded")
            continue
        what = "classes" if key == "classes" else "images"
        verdict = "ok" if found == expected else f"MISMATCH: {found} found; another version of the split file?"
        lines.append(f"  {key}: {expected} {what} expected, {verdict}")
    return lines


def _ordered(names) -> List[str]:
    """train, val, test, pool first, then any other split by name."""
    return sorted(names, key=lambda name: (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name))
