"""Unlabeled pools: the datasets' own (digits_lt, CIFAR-LT), folders and lists, and train + pool."""
from pathlib import Path

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.data import build_dataset
from ltbench.data.base import ArraySplit
from ltbench.data.pool import unlabeled_pool, with_pool_images


def write_lines(path: Path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def touch(root: Path, relative_paths):
    for relative in relative_paths:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")


def test_digits_pool_is_the_rest_of_the_collection_disjoint_from_every_split():
    data = build_dataset({"name": "digits_lt"})
    positions = {name: set(split.indices.tolist()) for name, split in data.splits.items()}
    pool = unlabeled_pool(data, None, None, None)
    assert pool is data.splits["pool"]
    for name in ("train", "val", "test"):
        assert not positions["pool"] & positions[name], name
    assert sum(len(p) for p in positions.values()) == len(set().union(*positions.values())) == 1797
    # Hidden labels are the true digits; the tail classes have the most left over.
    counts = np.bincount(pool.labels, minlength=10)
    assert counts[9] > counts[0] and (pool.labels >= 0).all()


def test_cifar_pool_is_the_training_images_the_profile_dropped(tmp_path, make_cifar10):
    folder = make_cifar10(tmp_path, per_class=60)
    data = build_dataset({"name": "cifar10_lt", "root": str(tmp_path), "imbalance_ratio": 10})
    train, pool = data.split("train"), unlabeled_pool(data, None, None, str(tmp_path))
    assert not set(train.indices.tolist()) & set(pool.indices.tolist())
    assert sorted(train.indices.tolist() + pool.indices.tolist()) == list(range(600))
    assert (np.bincount(train.labels) + np.bincount(pool.labels) == 60).all()
    # The test split comes from the separate test batch: its images are not among the pool's.
    pool_rows = {image.tobytes() for image in pool.images}
    assert not any(image.tobytes() in pool_rows for image in data.split("test").images)
    assert folder.is_dir()


def test_a_folder_pool_drops_split_images_and_reads_labels_off_class_folders(tmp_path):
    names = tmp_path / "names.txt"
    write_lines(names, ["fox", "wolf"])
    write_lines(tmp_path / "train.txt", ["train/fox/1.jpg 0", "train/wolf/1.jpg 1"])
    write_lines(tmp_path / "test.txt", ["test/fox/9.jpg 0", "test/wolf/9.jpg 1"])
    data = build_dataset({"name": "folder_lt", "root": str(tmp_path / "images"), "split_dir": str(tmp_path),
                          "train_list": "train.txt", "test_list": "test.txt", "classnames": "names.txt"})
    web = tmp_path / "web"
    # fox/1.jpg is a train image, wolf/9.jpg a test image: both must stay out of the pool.
    touch(web, ["fox/1.jpg", "fox/2.JPG", "wolf/9.jpg", "wolf/3.png", "misc/4.webp", "notes.txt"])
    messages = []
    pool = unlabeled_pool(data, str(web), None, str(tmp_path / "images"), log=messages.append)
    assert pool.paths == ["fox/2.JPG", "misc/4.webp", "wolf/3.png"]
    assert pool.labels.tolist() == [0, -1, 1]
    assert any("dropped 2 images" in message for message in messages)
    again = unlabeled_pool(data, str(web), None, None, log=messages.append)
    assert again.fingerprint == pool.fingerprint  # the listing, not the scan, is the identity


def test_a_listed_pool_and_its_errors(tmp_path):
    data = build_dataset({"name": "digits_lt"})
    listing = tmp_path / "pool.txt"
    write_lines(listing, ["a/1.jpg -1", "b/2.jpg 3"])
    pool = unlabeled_pool(data, str(tmp_path / "imgs"), str(listing), None)
    assert pool.paths == ["a/1.jpg", "b/2.jpg"] and pool.labels.tolist() == [-1, 3]
    assert Path(pool.root) == tmp_path / "imgs"
    write_lines(listing, ["a/1.jpg 10"])
    with pytest.raises(UserError, match=r"pool\.txt: pool label 10 is outside -1\.\.9"):
        unlabeled_pool(data, None, str(listing), None)
    with pytest.raises(UserError, match="pool.root is not a folder"):
        unlabeled_pool(data, str(tmp_path / "nowhere"), None, None)


def test_a_dataset_without_a_pool_asks_for_one(tmp_path):
    write_lines(tmp_path / "names.txt", ["fox"])
    write_lines(tmp_path / "train.txt", ["train/fox/1.jpg 0"])
    write_lines(tmp_path / "test.txt", ["test/fox/9.jpg 0"])
    data = build_dataset({"name": "folder_lt", "root": None, "split_dir": str(tmp_path),
                          "train_list": "train.txt", "test_list": "test.txt", "classnames": "names.txt"})
    with pytest.raises(UserError, match="no unlabeled pool of its own; pass pool.root"):
        unlabeled_pool(data, None, None, None)


def test_imagenet_lt_pool_is_imagenet_train_minus_the_lt_splits(tmp_path, real_splits):
    # The real split files hold ImageNet-LT's val and test files; a stand-in train file reuses val's format
    # (both list ImageNet-1k train images as train/<wnid>/<file>).
    split_dir = tmp_path / "splits"
    val_lines = (real_splits / "ImageNet_LT" / "ImageNet_LT_val.txt").read_text().splitlines()
    write_lines(split_dir / "ImageNet_LT_train.txt", val_lines[1::2])
    write_lines(split_dir / "ImageNet_LT_val.txt", val_lines[::2])
    write_lines(split_dir / "ImageNet_LT_test.txt",
                (real_splits / "ImageNet_LT" / "ImageNet_LT_test.txt").read_text().splitlines())
    data = build_dataset({"name": "imagenet_lt", "root": str(tmp_path), "split_dir": str(split_dir)})
    train, val = data.split("train"), data.split("val")
    # A fake ImageNet-1k train folder: three LT train images, one LT val image, two images in no split.
    in_splits = [train.paths[0], train.paths[1], train.paths[-1], val.paths[0]]
    wnid = Path(train.paths[0]).parent.name
    outside = [f"{wnid}/{wnid}_unused_1.JPEG", f"{wnid}/{wnid}_unused_2.JPEG"]
    imagenet_train = tmp_path / "imagenet_train"
    touch(imagenet_train, [str(Path(*Path(path).parts[1:])) for path in in_splits] + outside)
    pool = unlabeled_pool(data, str(imagenet_train), None, str(tmp_path), log=lambda message: None)
    assert pool.paths == sorted(outside)
    assert pool.labels.tolist() == [int(train.labels[0])] * 2  # hidden labels from the wnid folders


def test_train_plus_pool_keeps_train_first_and_gives_pool_images_their_pseudo_labels(tmp_path):
    images = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    train = ArraySplit(name="train", images=images[:2], labels=np.array([0, 1]))
    pool = ArraySplit(name="pool", images=images[2:], labels=np.array([1, 1, 0]))
    enriched = with_pool_images(train, pool, [2, 0], [0, 0])
    assert enriched.labels.tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(enriched.images, images[[0, 1, 4, 2]])
    assert enriched.fingerprint != train.fingerprint
