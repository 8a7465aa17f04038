import pickle
from pathlib import Path

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.data import build_dataset
from ltbench.data.base import ArraySplit
from ltbench.data.profiles import exponential_profile

# DATASETS.md: LDAM-DRW training-set sizes for CIFAR-100-LT (n_max 500) and CIFAR-10-LT (n_max 5000).
LITERATURE_TOTALS = {10: (19573, 20431), 50: (12608, 13996), 100: (10847, 12406), 200: (9502, 11203)}


@pytest.mark.parametrize("ratio", sorted(LITERATURE_TOTALS))
def test_profile_totals_match_the_literature(ratio):
    cifar100_total, cifar10_total = LITERATURE_TOTALS[ratio]
    assert sum(exponential_profile(500, 100, ratio)) == cifar100_total
    assert sum(exponential_profile(5000, 10, ratio)) == cifar10_total


def dump(path: Path, content: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle)


def source_batches(folder: Path):
    images, labels = [], []
    for batch in range(1, 6):
        with open(folder / f"data_batch_{batch}", "rb") as handle:
            content = pickle.load(handle)
        images.append(content["data"])
        labels += content["labels"]
    return np.concatenate(images), np.asarray(labels)


def test_cifar10_lt_profile_selection_and_splits(tmp_path, make_cifar10):
    folder = make_cifar10(tmp_path)
    dataset = build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})
    expected = exponential_profile(60, 10, 10)  # n_max = 600 train images / 10 classes
    train = dataset.split("train")
    assert isinstance(train, ArraySplit)
    assert dataset.class_counts.tolist() == expected
    assert train.images.shape == (sum(expected), 32, 32, 3) and train.images.dtype == np.uint8
    assert len(dataset.split("pool")) == 600 - sum(expected)
    assert sorted(np.concatenate([train.indices, dataset.split("pool").indices]).tolist()) == list(range(600))
    assert len(dataset.split("test")) == 100 and dataset.split("val").name == "val"
    assert dataset.split("val").fingerprint == dataset.split("test").fingerprint
    assert "test" in dataset.notes["val"]

    # Rows are channel-first planes; the pool keeps its hidden labels.
    rows, labels = source_batches(folder)
    first = train.indices[0]
    assert np.array_equal(train.images[0][:, :, 1], rows[first].reshape(3, 32, 32)[1])
    assert np.array_equal(dataset.split("pool").labels, labels[dataset.split("pool").indices])

    # LDAM-DRW: global np.random.seed(0), then shuffle each class's positions in class order.
    np.random.seed(0)
    ldam = []
    for class_index, count in enumerate(expected):
        positions = np.where(labels == class_index)[0]
        np.random.shuffle(positions)
        ldam.append(positions[:count])
    assert np.array_equal(train.indices, np.concatenate(ldam))


def test_seed_changes_the_selection(tmp_path, make_cifar10):
    make_cifar10(tmp_path)
    options = {"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10}
    default = build_dataset(options).split("train").indices
    assert not np.array_equal(default, build_dataset({**options, "seed": 1}).split("train").indices)


def test_bytes_keys_are_read(tmp_path, make_cifar10):
    make_cifar10(tmp_path, bytes_keys=True)
    dataset = build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})
    assert dataset.class_names[1] == "automobile"


def test_cifar100_lt_names_and_default_ratio(tmp_path, make_cifar100):
    make_cifar100(tmp_path)
    dataset = build_dataset({"name": "cifar100_lt", "root": str(tmp_path)})  # the ratio from cifar100_lt.yaml
    assert dataset.class_names[0] == "aquarium fish" and dataset.num_classes == 100
    assert dataset.class_counts.tolist() == exponential_profile(5, 100, 100)
    assert len(dataset.split("test")) == 200


def test_missing_archive_without_download(tmp_path):
    with pytest.raises(UserError, match=r"cifar-10-batches-py.*download is false.*cifar-10-python\.tar\.gz"):
        build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "download": False})


def test_failed_download_says_to_download_manually(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(UserError) as error:
        build_dataset({"name": "cifar100_lt", "root": str(tmp_path)})
    message = str(error.value)
    assert "network unreachable" in message and str(tmp_path / "cifar-100-python") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message


def test_download_when_the_archive_is_missing(tmp_path, monkeypatch, make_cifar10):
    calls = []

    def fake_download(url, download_root, filename, md5):
        calls.append((url, md5))
        make_cifar10(Path(download_root))

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    dataset = build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")]
    assert len(dataset.split("test")) == 100


def test_option_errors(tmp_path, make_cifar10):
    make_cifar10(tmp_path)
    with pytest.raises(UserError, match=r"dataset.imbalance_ratio=0.5: expected a finite number >= 1"):
        build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 0.5})
    with pytest.raises(UserError, match="--data-root"):
        build_dataset({"name": "cifar10_lt", "root": None})


def test_corrupt_pickle_names_the_file(tmp_path, make_cifar10):
    folder = make_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="data_batch_3"):
        build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})


def test_label_outside_meta_names_the_batch(tmp_path, make_cifar10):
    folder = make_cifar10(tmp_path)
    dump(folder / "test_batch", {"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [0, 10]})
    with pytest.raises(UserError, match=r"test_batch: label 10"):
        build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})


@pytest.mark.slow  # a run: outside the inner loop
def test_shot_groups_by_a_reference_profile_as_lift_does(tmp_path, make_cifar100):
    from ltbench.metrics import group_sizes

    make_cifar100(tmp_path, per_class=500)  # n_max = 500, as the real CIFAR-100
    options = {"name": "cifar100_lt", "root": str(tmp_path), "imbalance_ratio": 10}
    by_train = build_dataset({**options, "shot_reference_ir": None})
    assert by_train.shot_counts is None and by_train.grouping_counts.tolist() == by_train.class_counts.tolist()
    assert group_sizes(by_train.grouping_counts) == {"many": 69, "medium": 31, "few": 0}  # DATASETS.md
    by_reference = build_dataset({**options, "shot_reference_ir": 100})
    # The training images stay IR10's; only the grouping follows the IR100 counts (35 / 35 / 30).
    assert by_reference.class_counts.tolist() == by_train.class_counts.tolist()
    assert by_reference.grouping_counts.tolist() == exponential_profile(500, 100, 100)
    assert group_sizes(by_reference.grouping_counts) == {"many": 35, "medium": 35, "few": 30}
    assert "100 profile" in by_reference.notes["shot_counts"]
    with pytest.raises(UserError, match=r"dataset.shot_reference_ir='ir100': expected a finite number >= 1 or null"):
        build_dataset({**options, "shot_reference_ir": "ir100"})
