"""cifar10_lt / cifar100_lt: CIFAR with the LDAM-DRW long-tailed train profile, read from the python archives."""
import dataclasses
import pickle
from pathlib import Path
from typing import List, NamedTuple, Tuple

import numpy as np

from ltbench.config.options import Option, declare_options
from ltbench.core.errors import UserError
from ltbench.core.registry import DATASETS
from ltbench.data.base import ArraySplit, LTDataset, required_options
from ltbench.data.profiles import exponential_profile

ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/"
# The options this builder reads; their values live in benchmarks/datasets/cifar*_lt.yaml.
CIFAR_OPTIONS = {
    "imbalance_ratio": Option(float, ge=1, help="n_max / n_min of the train split (LDAM-DRW's exponential profile)"),
    "seed": Option(int, ge=0, help="numpy seed of the images the profile keeps"),
    "shot_reference_ir": Option(float, ge=1, nullable=True,
                                help="group many / medium / few by this imbalance ratio's profile (null: the train counts)"),
    "download": Option(bool, help="download the archive into the data root when it is missing"),
}
OPTIONS = tuple(CIFAR_OPTIONS)


class CifarArchive(NamedTuple):
    folder: str
    train_files: Tuple[str, ...]
    test_file: str
    meta_file: str
    labels_key: str
    names_key: str
    tarball: str
    md5: str


CIFAR10 = CifarArchive(
    folder="cifar-10-batches-py", train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch", meta_file="batches.meta", labels_key="labels", names_key="label_names",
    tarball="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarArchive(
    folder="cifar-100-python", train_files=("train",), test_file="test", meta_file="meta",
    labels_key="fine_labels", names_key="fine_label_names",
    tarball="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _unpickle(path: Path) -> dict:
    # The archives are Python 2 pickles: 'latin1' reads their numpy arrays; keys may still be bytes.
    try:
        with open(path, "rb") as handle:
            content = pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as error:
        raise UserError(f"{path}: not a CIFAR python pickle ({error}); re-extract the archive") from None
    if not isinstance(content, dict):
        raise UserError(f"{path}: not a CIFAR python pickle (expected a dict); re-extract the archive")
    return {_text(key): value for key, value in content.items()}


def _field(content: dict, key: str, path: Path):
    if key not in content:
        raise UserError(f"{path}: the pickle has no '{key}' entry; is this the right CIFAR archive?")
    return content[key]


def _read_batches(folder: Path, files: Tuple[str, ...], labels_key: str,
                  num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32, 3] and int64 labels of the given batch files, concatenated in order."""
    images, labels = [], []
    for file_name in files:
        path = folder / file_name
        content = _unpickle(path)
        rows = np.asarray(_field(content, "data", path), dtype=np.uint8)
        if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
            raise UserError(f"{path}: 'data' has shape {rows.shape}, expected [N, 3072]")
        # Each row is the red, green then blue 32x32 plane.
        images.append(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        batch_labels = np.asarray(_field(content, labels_key, path), dtype=np.int64)
        bad = np.flatnonzero((batch_labels < 0) | (batch_labels >= num_classes))
        if len(bad) or len(batch_labels) != len(rows):
            found = f"label {int(batch_labels[bad[0]])}" if len(bad) else f"{len(batch_labels)} labels"
            raise UserError(f"{path}: {found} for {len(rows)} images of {num_classes} classes "
                            f"(names from the meta file); re-extract the archive")
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def _ensure_archive(root: Path, archive: CifarArchive, dataset: str, download: bool) -> Path:
    folder = root / archive.folder
    needed = [folder / name for name in archive.train_files + (archive.test_file, archive.meta_file)]
    if all(path.is_file() for path in needed):
        return folder
    manual = (f"download {ARCHIVE_URL}{archive.tarball} and extract it in {root} "
              f"so that {folder}/ exists")
    if not download:
        missing = next(path for path in needed if not path.is_file())
        raise UserError(f"{dataset}: {missing} not found and dataset.download is false; {manual}")
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(ARCHIVE_URL + archive.tarball, download_root=str(root),
                                     filename=archive.tarball, md5=archive.md5)
    except Exception as error:  # network, disk or checksum: all mean the user must fetch it by hand
        raise UserError(f"{dataset}: could not download the CIFAR archive ({type(error).__name__}: "
                        f"{str(error)[:120]}); {manual}") from None
    if not all(path.is_file() for path in needed):
        raise UserError(f"{dataset}: the downloaded archive did not produce {folder}/; {manual}")
    return folder


def long_tailed_indices(targets: np.ndarray, per_class: List[int], seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(kept, dropped) positions: LDAM-DRW's selection, class by class in index order.

    One RandomState shuffles each class's positions in turn, exactly as LDAM's global
    np.random.seed(seed) + np.random.shuffle, so the same images are kept.
    """
    rng = np.random.RandomState(seed)
    kept, dropped = [], []
    for class_index, count in enumerate(per_class):
        positions = np.where(targets == class_index)[0]
        rng.shuffle(positions)
        kept.append(positions[:count])
        dropped.append(positions[count:])
    return np.concatenate(kept), np.concatenate(dropped)


def _options(options: dict, dataset: str) -> dict:
    """The builder's options (declared in CIFAR_OPTIONS, checked before it is called)."""
    opts = required_options(options, OPTIONS, dataset)
    opts["imbalance_ratio"], opts["seed"] = float(opts["imbalance_ratio"]), int(opts["seed"])
    if opts["shot_reference_ir"] is not None:
        opts["shot_reference_ir"] = float(opts["shot_reference_ir"])
    return opts


def _build(options: dict, archive: CifarArchive, dataset: str) -> LTDataset:
    opts = _options(options, dataset)
    if not options.get("root"):
        raise UserError(f"{dataset}: no data root; pass --data-root DIR (the folder holding {archive.folder}/)")
    folder = _ensure_archive(Path(options["root"]).expanduser(), archive, dataset, bool(opts["download"]))
    meta_path = folder / archive.meta_file
    class_names = [_text(name).replace("_", " ") for name in _field(_unpickle(meta_path), archive.names_key, meta_path)]
    num_classes = len(class_names)
    train_images, train_labels = _read_batches(folder, archive.train_files, archive.labels_key, num_classes)
    test_images, test_labels = _read_batches(folder, (archive.test_file,), archive.labels_key, num_classes)

    # n_max = 5000 (CIFAR-10) or 500 (CIFAR-100): the balanced training set's size per class.
    n_max = len(train_labels) // num_classes
    per_class = exponential_profile(n_max, num_classes, opts["imbalance_ratio"])
    reference = opts["shot_reference_ir"]
    shot_counts = None if reference is None else np.array(exponential_profile(n_max, num_classes, reference))
    kept, dropped = long_tailed_indices(train_labels, per_class, opts["seed"])
    test = ArraySplit(name="test", images=test_images, labels=test_labels, indices=np.arange(len(test_labels)))
    splits = {
        "train": ArraySplit(name="train", images=train_images[kept], labels=train_labels[kept], indices=kept),
        "val": dataclasses.replace(test, name="val"),
        "test": test,
        "pool": ArraySplit(name="pool", images=train_images[dropped], labels=train_labels[dropped], indices=dropped),
    }
    notes = {} if reference is None else {
        "shot_counts": f"many / medium / few grouped by the imbalance ratio {reference:g} profile's counts "
                       f"(LIFT's convention), not by these training counts"}
    return LTDataset(
        name=dataset, class_names=class_names, splits=splits, shot_counts=shot_counts,
        notes={**notes, "profile": f"exponential (LDAM-DRW), n_max={per_class[0]}, imbalance ratio "
                          f"{opts['imbalance_ratio']:g}, seed {opts['seed']}: {len(kept)} training images",
               "val": "val is the balanced test set (LDAM-DRW / LIFT convention: CIFAR has no val split)",
               "pool": "training images the profile left out; labels are hidden ground truth"},
    )


@DATASETS.register_module(name="cifar10_lt")
@declare_options(CIFAR_OPTIONS)
def build_cifar10_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """CIFAR-10-LT: exponential long-tailed train (LDAM-DRW, default imbalance ratio 100), balanced test."""
    return _build(options, CIFAR10, "cifar10_lt")


@DATASETS.register_module(name="cifar100_lt")
@declare_options(CIFAR_OPTIONS)
def build_cifar100_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """CIFAR-100-LT: exponential long-tailed train (LDAM-DRW, default imbalance ratio 100), balanced test."""
    return _build(options, CIFAR100, "cifar100_lt")
