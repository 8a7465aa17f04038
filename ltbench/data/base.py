"""What every dataset returns: splits of images + labels, class names and train class counts."""
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ltbench.core.errors import UserError


class Split:
    """One split: its labels and a content fingerprint (what the feature cache is keyed by).

    Labels of an unlabeled pool are its hidden labels where known, else -1.
    """

    name: str
    labels: np.ndarray
    fingerprint: str

    def __len__(self):
        return len(self.labels)


@dataclass
class FileSplit(Split):
    """Images listed in a split file (``relative/path label`` per line) under an image root."""

    name: str
    root: Optional[Path]
    paths: List[str]
    labels: np.ndarray
    list_file: Path
    list_sha256: str
    _files_digest: Optional[str] = field(default=None, repr=False, compare=False)

    @property
    def fingerprint(self):
        """The split file's content (which images, in which order, with which labels) and what
        the image files are: path, size and modification time of each (os.stat, no reading),
        so a replaced, rewritten, touched or deleted image changes it and invalidates every
        cache entry of the split. Gathered once per split object."""
        return f"file:{self.list_sha256}:stat:{self.files_digest()}"

    def files_digest(self) -> str:
        if self._files_digest is None:
            digest = hashlib.sha256()
            root = str(self.root) if self.root is not None else ""
            for relative in self.paths:
                try:
                    stat = os.stat(os.path.join(root, relative))
                    digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                except OSError:  # missing or unreadable: the loader names it when it gets there
                    digest.update(f"{relative}\0missing\n".encode())
            self._files_digest = digest.hexdigest()
        return self._files_digest

    def image_path(self, index: int) -> Path:
        return Path(self.root) / self.paths[index]


@dataclass
class ArraySplit(Split):
    """Images held in memory as uint8 arrays [N, H, W] (grey) or [N, H, W, 3], transformed per batch."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    indices: Optional[np.ndarray] = None  # positions in the source collection, where meaningful
    _fingerprint: Optional[str] = field(default=None, repr=False)

    @property
    def fingerprint(self):
        if self._fingerprint is None:
            digest = hashlib.sha256()
            digest.update(np.ascontiguousarray(self.images).tobytes())
            digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            self._fingerprint = f"array:{digest.hexdigest()}"
        return self._fingerprint


def split_subset(split: Split, indices, name: Optional[str] = None) -> Split:
    """The images of ``split`` at ``indices``, in that order, as a split of their own (named
    ``name``, default the split's): for a pass over some of a split's images (LIFT's class-mean
    classifier init from at most N images a class). Its fingerprint follows the subset."""
    indices = np.asarray(indices, dtype=np.int64)
    name = split.name if name is None else name
    picked = hashlib.sha256(indices.tobytes()).hexdigest()
    if isinstance(split, FileSplit):
        return FileSplit(name=name, root=split.root, paths=[split.paths[i] for i in indices],
                         labels=np.asarray(split.labels)[indices], list_file=split.list_file,
                         list_sha256=hashlib.sha256(f"{split.list_sha256}:{picked}".encode()).hexdigest())
    if isinstance(split, ArraySplit):
        source = split.indices[indices] if split.indices is not None else indices
        return ArraySplit(name=name, images=split.images[indices], labels=np.asarray(split.labels)[indices],
                          indices=source)
    raise TypeError(f"no subset of split type {type(split).__name__}")


@dataclass
class LTDataset:
    """A long-tailed dataset: train / val / test (and optionally 'pool') splits and class names.

    ``missing`` maps a split name to why it could not be loaded; it is only filled when the
    dataset is built for `ltbench data check` (require_all_splits=False).
    """

    name: str
    class_names: List[str]
    splits: Dict[str, Split]
    notes: Dict[str, str] = field(default_factory=dict)
    split_files: Dict[str, str] = field(default_factory=dict)  # split -> sha256 of its file
    missing: Dict[str, str] = field(default_factory=dict)
    # Counts many / medium / few are grouped by, when not the training counts: a reference
    # profile (LIFT groups CIFAR-100-LT IR10 / IR50 by the IR100 counts).
    shot_counts: Optional[np.ndarray] = None
    # What the dataset's definition promises: 'classes' and split name -> images (the published
    # split files' sizes); `ltbench data check` compares them with what it read.
    expected_counts: Dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        """Training images per class (what many / medium / few are defined by)."""
        return np.bincount(self.split("train").labels, minlength=self.num_classes)

    @property
    def grouping_counts(self) -> np.ndarray:
        """Per-class counts the shot groups come from: ``shot_counts``, else the training counts."""
        return self.class_counts if self.shot_counts is None else np.asarray(self.shot_counts)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            reason = self.missing.get(name)
            if reason:
                raise UserError(reason)
            raise UserError(
                f"dataset '{self.name}' has no '{name}' split (it has: {', '.join(self.splits)})"
            )
        return self.splits[name]


def required_options(options: dict, keys, dataset: str) -> dict:
    """The builder's options, each given (build_dataset fills them from the dataset's YAML)."""
    missing = [key for key in keys if key not in options]
    if missing:
        raise UserError(f"{dataset}: dataset option(s) {', '.join(missing)} not set; "
                        f"benchmarks/datasets/{dataset}.yaml gives their defaults")
    return {key: options[key] for key in keys}
