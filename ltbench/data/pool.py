"""Unlabeled pools (images a method may pseudo-label) and train splits enlarged with pool images.

Where a pool comes from, first match wins:
- ``pool.list``: a split file of ``relative/path label`` lines (label -1 = unknown, else the
  image's hidden true class, used only to measure pseudo-label precision), relative to
  ``pool.root`` (default: the data root);
- ``pool.root``: every image file under that folder. ImageNet-LT's pool is ImageNet-1k train:
  ``pool.root=/data/imagenet/train`` lists it, and images already in the LT splits are dropped;
- the dataset's own ``pool`` split: digits_lt and CIFAR-LT keep the images their long-tailed
  profile left out, with their true labels hidden.

Evaluation images must never enter training: a pool image whose last two path parts
(``<class folder>/<file>``) match an image of the train, val or test split is dropped.
"""
import hashlib
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ltbench.core.errors import UserError
from ltbench.data.base import ArraySplit, FileSplit, LTDataset, Split
from ltbench.data.split_files import read_split_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _identity(path: str) -> str:
    """'train/n01440764/n01440764_10026.JPEG' -> 'n01440764/n01440764_10026.JPEG'."""
    return "/".join(Path(path).parts[-2:])


def _folder_labels(train: FileSplit) -> Dict[str, int]:
    """class folder name -> label, read off the train split (ImageNet: wnid -> index); folders that
    hold images of two labels are left out."""
    labels: Dict[str, int] = {}
    ambiguous = set()
    for path, label in zip(train.paths, train.labels.tolist()):
        folder = Path(path).parent.name
        if labels.setdefault(folder, label) != label:
            ambiguous.add(folder)
    return {folder: label for folder, label in labels.items() if folder not in ambiguous}


def scan_image_folder(root: Path, progress: bool = False):
    """Relative paths of every image file under `root`, sorted (a deterministic pool order)."""
    from tqdm.auto import tqdm

    found = []
    for folder, _, files in tqdm(os.walk(root), desc=f"scan {root}", unit=" folders", disable=not progress,
                                 leave=False):
        relative = Path(folder).relative_to(root)
        found.extend(str(relative / name) for name in files if name.lower().endswith(IMAGE_SUFFIXES))
    return sorted(found)


def _file_pool(paths, labels, root: Path, source: Path, sha256: str) -> FileSplit:
    return FileSplit(name="pool", root=root, paths=list(paths), labels=np.asarray(labels, dtype=np.int64),
                     list_file=source, list_sha256=sha256)


def _listed_pool(list_file: Path, root: Path, num_classes: int) -> FileSplit:
    paths, labels, sha256 = read_split_file(list_file)
    bad = np.flatnonzero((labels < -1) | (labels >= num_classes))
    if len(bad):
        raise UserError(f"{list_file}: pool label {int(labels[bad[0]])} is outside -1..{num_classes - 1} "
                        f"(-1 = unknown, else the hidden class index)")
    return _file_pool(paths, labels, root, list_file, sha256)


def _scanned_pool(root: Path, train: Split, progress: bool) -> FileSplit:
    if not root.is_dir():
        raise UserError(f"pool.root is not a folder: {root}; pass the folder of unlabeled images "
                        "(ImageNet-LT: the ImageNet-1k train folder)")
    paths = scan_image_folder(root, progress)
    if not paths:
        raise UserError(f"pool.root {root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    folder_labels = _folder_labels(train) if isinstance(train, FileSplit) else {}
    labels = [folder_labels.get(Path(path).parent.name, -1) for path in paths]
    # The listing is the pool's identity: the feature cache is keyed by its hash.
    content = "".join(f"{path} {label}\n" for path, label in zip(paths, labels)).encode()
    return _file_pool(paths, labels, root, root, hashlib.sha256(content).hexdigest())


def _without_split_images(pool: FileSplit, data: LTDataset, log) -> FileSplit:
    taken = {_identity(path) for name in ("train", "val", "test") if isinstance(data.splits.get(name), FileSplit)
             for path in data.splits[name].paths}
    keep = np.asarray([_identity(path) not in taken for path in pool.paths], dtype=bool)
    if keep.all():
        return pool
    log(f"pool: dropped {int((~keep).sum()):,} images that are in the train / val / test splits")
    kept_paths = [path for path, kept in zip(pool.paths, keep) if kept]
    digest = hashlib.sha256(f"{pool.list_sha256} minus splits {sorted(data.split_files.items())}".encode())
    return _file_pool(kept_paths, pool.labels[keep], pool.root, pool.list_file, digest.hexdigest())


def unlabeled_pool(data: LTDataset, root: Optional[str], list_file: Optional[str], data_root: Optional[str],
                   log=print, progress: bool = False) -> Split:
    """The pool a run pseudo-labels (see the module docstring for where it comes from)."""
    if list_file:
        list_path = Path(list_file).expanduser()
        base = Path(root or data_root or list_path.parent).expanduser()
        pool = _listed_pool(list_path, base, data.num_classes)
    elif root:
        pool = _scanned_pool(Path(root).expanduser(), data.split("train"), progress)
    elif "pool" in data.splits:
        return data.splits["pool"]
    else:
        raise UserError(f"dataset '{data.name}' has no unlabeled pool of its own; pass pool.root=DIR (a folder "
                        "of images) or pool.list=FILE (lines '<path> <label or -1>')")
    pool = _without_split_images(pool, data, log)
    if not len(pool):
        raise UserError(f"the pool ({list_file or root}) has no image that is not already in the dataset's splits")
    return pool


def with_pool_images(train: Split, pool: Split, indices, labels) -> Split:
    """The train split plus pool images ``indices`` labelled ``labels`` (pseudo-labels)."""
    indices = np.asarray(indices, dtype=np.int64)
    labels = np.concatenate([train.labels, np.asarray(labels, dtype=np.int64)])
    if isinstance(train, ArraySplit) and isinstance(pool, ArraySplit):
        if train.images.shape[1:] != pool.images.shape[1:]:
            raise UserError(f"pool images of shape {pool.images.shape[1:]} cannot join train images of "
                            f"shape {train.images.shape[1:]}")
        return ArraySplit(name="train+pool", images=np.concatenate([train.images, pool.images[indices]]),
                          labels=labels)
    if isinstance(train, FileSplit) and isinstance(pool, FileSplit):
        # Pool paths become absolute, so one root (the train split's) serves both.
        pool_root = Path(pool.root)
        paths = list(train.paths) + [str((pool_root / pool.paths[i]).absolute()) for i in indices.tolist()]
        digest = hashlib.sha256()
        for part in (train.list_sha256, pool.list_sha256, indices.tobytes(), labels.tobytes()):
            digest.update(part.encode() if isinstance(part, str) else part)
        return FileSplit(name="train+pool", root=train.root, paths=paths, labels=labels,
                         list_file=train.list_file, list_sha256=digest.hexdigest())
    raise UserError(f"pool images ({type(pool).__name__}) cannot join a train split held as "
                    f"{type(train).__name__}: give an in-memory dataset's pool no pool.root / pool.list")
