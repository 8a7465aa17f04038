"""Fakes of the datasets' layouts on disk: CIFAR's pickled batches and, for every registered
dataset, a tiny folder that `ltbench run` can train and evaluate on (FAKE_LAYOUTS).

A newly registered dataset needs an entry in FAKE_LAYOUTS: test_every_dataset.py runs every
registered dataset end to end and fails for one without a fake."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _dump(path: Path, content: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle)


def make_cifar10(root: Path, per_class=60, test_per_class=10, bytes_keys=False):
    """cifar-10-batches-py with random images: per_class train images per class over 5 batches."""
    rng = np.random.RandomState(1)
    folder = root / "cifar-10-batches-py"
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    key = (lambda name: name.encode()) if bytes_keys else (lambda name: name)
    for batch, chunk in enumerate(np.array_split(labels, 5), start=1):
        data = rng.randint(0, 256, size=(len(chunk), 3072), dtype=np.uint8)
        _dump(folder / f"data_batch_{batch}", {key("data"): data, key("labels"): chunk.tolist()})
    test_labels = np.repeat(np.arange(10), test_per_class)
    _dump(folder / "test_batch", {key("data"): rng.randint(0, 256, size=(len(test_labels), 3072), dtype=np.uint8),
                                  key("labels"): test_labels.tolist()})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {key("label_names"): [key(name) for name in names]})
    return folder


def make_cifar100(root: Path, per_class=5):
    """cifar-100-python with random images: per_class train images per class, 2 test images per class."""
    rng = np.random.RandomState(2)
    folder = root / "cifar-100-python"
    labels = rng.permutation(np.repeat(np.arange(100), per_class))
    _dump(folder / "train", {"data": rng.randint(0, 256, size=(len(labels), 3072), dtype=np.uint8),
                             "fine_labels": labels.tolist(), "coarse_labels": [0] * len(labels)})
    _dump(folder / "test", {"data": rng.randint(0, 256, size=(200, 3072), dtype=np.uint8),
                            "fine_labels": np.repeat(np.arange(100), 2).tolist()})
    _dump(folder / "meta", {"fine_label_names": ["aquarium_fish"] + [f"class_{i}" for i in range(1, 100)]})
    return folder


@pytest.fixture(name="make_cifar10")
def _make_cifar10_fixture():
    """make_cifar10(root, per_class=60, test_per_class=10, bytes_keys=False) -> the batches folder."""
    return make_cifar10


@pytest.fixture(name="make_cifar100")
def _make_cifar100_fixture():
    """make_cifar100(root, per_class=5) -> the batches folder."""
    return make_cifar100


# ---- one fake layout per registered dataset ----

def _image(path: Path, seed, size=(36, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _write_split(root, split_file, entries):
    for seed, (relative, _) in enumerate(entries):
        _image(root / relative, seed)
    split_file.write_text("".join(f"{relative} {label}\n" for relative, label in entries))


IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]


def make_imagenet_lt(root: Path):
    """ImageNet-LT layout: train/<wnid>/ for train + val splits, val/<wnid>/ (sorted ILSVRC val) for
    test; 6 / 4 / 2 training images of the first three classes, one val and two test images each."""
    lines = {"train": [], "val": [], "test": []}
    seed = 0
    for label, wnid in enumerate(IMAGENET_WNIDS):
        for i in range(6 - 2 * label):  # 6 / 4 / 2 training images: long-tailed
            lines["train"].append(f"train/{wnid}/{wnid}_{i}.JPEG {label}")
        lines["val"].append(f"train/{wnid}/{wnid}_100.JPEG {label}")
        for i in range(2):
            lines["test"].append(f"val/{wnid}/ILSVRC2012_val_{label * 10 + i:08d}.JPEG {label}")
    for split, entries in lines.items():
        for entry in entries:
            seed += 1
            _image(root / entry.split()[0], seed, size=(40, 52))
        (root / f"ImageNet_LT_{split}.txt").write_text("\n".join(entries) + "\n")
    return root


def _imagenet(root):
    make_imagenet_lt(root)
    return ["--data-root", root], 1000


def _places(root):
    names = [f"category_{i}" for i in range(365)]
    (root / "classnames.txt").write_text("".join(f"{n} {n}\n" for n in names))
    for split, folder in (("train", "train"), ("val", "train"), ("test", "val")):
        entries = [(f"{folder}/{names[c]}/{split}_{i}.jpg", c) for c in range(3) for i in range(3 - c)]
        _write_split(root, root / f"Places_LT_{split}.txt", entries)
    return ["--data-root", root], 365


def _inat(root):
    categories = [{"id": i, "name": f"Genus species{i}"} for i in range(8142)]
    (root / "categories.json").write_text(json.dumps(categories))
    for split in ("train", "val"):
        entries = [(f"train_val2018/Plantae/{c}/{split}_{i}.jpg", c) for c in range(3) for i in range(2)]
        _write_split(root, root / f"iNaturalist18_{split}.txt", entries)
    return ["--data-root", root], 8142


def _folder(root):
    (root / "names.txt").write_text("cat\ndog\nbird\n")
    for split in ("train", "val", "test"):
        _write_split(root, root / f"{split}.txt", [(f"img/{split}_{c}_{i}.png", c) for c in range(3) for i in range(2)])
    return ["--data-root", root, "--cfg-options", "dataset.train_list=train.txt", "dataset.val_list=val.txt",
            "dataset.test_list=test.txt", "dataset.classnames=names.txt"], 3


def _cifar10(root):
    make_cifar10(root, per_class=20, test_per_class=4)
    return ["--data-root", root, "--cfg-options", "dataset.imbalance_ratio=10", "dataset.download=false"], 10


def _cifar100(root):
    make_cifar100(root, per_class=5)
    return ["--data-root", root, "--cfg-options", "dataset.imbalance_ratio=5", "dataset.download=false"], 100


def _digits(root):
    return [], 10  # bundled with scikit-learn: nothing to lay out


# dataset name -> maker(root): writes a tiny copy of the dataset's layout under root (an empty
# folder) and returns (the `ltbench run` arguments that point at it, the number of classes).
FAKE_LAYOUTS = {
    "cifar10_lt": _cifar10,
    "cifar100_lt": _cifar100,
    "digits_lt": _digits,
    "folder_lt": _folder,
    "imagenet_lt": _imagenet,
    "inat2018": _inat,
    "places_lt": _places,
}


@pytest.fixture
def fake_layouts():
    """FAKE_LAYOUTS: dataset name -> maker(root) -> (run arguments, number of classes)."""
    return FAKE_LAYOUTS


@pytest.fixture
def imagenet_root(tmp_path):
    """A folder laid out as ImageNet-LT (make_imagenet_lt): 12 train, 3 val and 6 test images."""
    return make_imagenet_lt(tmp_path / "imagenet")
