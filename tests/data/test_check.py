from pathlib import Path

import numpy as np
from PIL import Image

from ltbench.data import build_dataset
from ltbench.data.base import ArraySplit, LTDataset
from ltbench.data.check import check_report, missing_images


def write_lines(path: Path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def make_folder_dataset(tmp_path, skip_images=()):
    """3 classes, train 3/1/1; every listed image written except those in skip_images."""
    lists, root = tmp_path / "lists", tmp_path / "images"
    write_lines(lists / "names.txt", ["fox", "wolf", "lynx"])
    train = ["train/fox/1.jpg 0", "train/fox/2.jpg 0", "train/fox/3.jpg 0", "train/wolf/1.jpg 1", "train/lynx/1.jpg 2"]
    test = ["val/fox/1.jpg 0", "val/wolf/1.jpg 1", "val/lynx/1.jpg 2"]
    write_lines(lists / "train.txt", train)
    write_lines(lists / "test.txt", test)
    for line in train + test:
        relative = line.split()[0]
        if relative not in skip_images:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (2, 2)).save(root / relative)
    return {"name": "folder_lt", "root": str(root), "split_dir": str(lists),
            "train_list": "train.txt", "test_list": "test.txt", "classnames": "names.txt"}


def row(report: str, split: str):
    return next(line.split() for line in report.splitlines() if line.startswith(split + " "))


def test_missing_images_counts_absent_files_and_folders(tmp_path):
    options = make_folder_dataset(tmp_path, skip_images={"train/fox/2.jpg", "val/lynx/1.jpg"})
    dataset = build_dataset(options)
    assert missing_images(dataset.split("train")) == 1
    assert missing_images(dataset.split("test")) == 1  # its whole folder is absent


def test_report_rows(tmp_path):
    options = make_folder_dataset(tmp_path, skip_images={"train/fox/2.jpg"})
    report = check_report(build_dataset(options))
    assert "folder_lt (3 classes)" in report
    # split, images, classes, max, min, imbalance, many, medium, few, missing
    assert row(report, "train") == ["train", "5", "3", "3", "1", "3.0", "0", "0", "3", "1", "of", "5"]
    assert row(report, "val") == ["val", "3", "3", "1", "1", "1.0", "0", "0", "3", "0"]
    assert "val is the test split" in report


def test_report_groups_follow_the_rule(tmp_path):
    lists = tmp_path / "lists"
    write_lines(lists / "names.txt", ["a", "b", "c"])
    write_lines(lists / "train.txt", [f"x/a{i}.jpg 0" for i in range(100)] + [f"x/b{i}.jpg 1" for i in range(20)]
                + ["x/c.jpg 2"])
    write_lines(lists / "test.txt", ["y/a.jpg 0", "y/c.jpg 2"])
    dataset = build_dataset({"name": "folder_lt", "root": None, "split_dir": str(lists), "train_list": "train.txt",
                             "test_list": "test.txt", "classnames": "names.txt"})
    assert row(check_report(dataset), "train")[6:9] == ["0", "2", "1"]
    assert row(check_report(dataset, "oltr"), "train")[6:9] == ["1", "0", "2"]
    # The test split holds classes a and c only, each in its training group.
    assert row(check_report(dataset, "oltr"), "test")[6:9] == ["1", "0", "1"]


def test_report_without_or_with_absent_root(tmp_path):
    options = make_folder_dataset(tmp_path)
    report = check_report(build_dataset({**options, "root": None}))
    assert "not checked (no data root)" in report
    report = check_report(build_dataset({**options, "root": str(tmp_path / "gone")}))
    assert "gone (does not exist)" in report
    assert "not checked (data root does not exist)" in report


def test_report_lists_missing_split_files(tmp_path):
    options = make_folder_dataset(tmp_path)
    dataset = build_dataset({**options, "train_list": "absent.txt"}, require_all_splits=False)
    report = check_report(dataset)
    assert "train: NOT LOADED" in report and "absent.txt" in report
    assert row(report, "test")[6:9] == ["-", "-", "-"]


def test_report_of_array_splits_with_unknown_pool_labels():
    images = np.zeros((4, 2, 2), dtype=np.uint8)
    splits = {"train": ArraySplit("train", images, np.array([0, 0, 0, 1])),
              "pool": ArraySplit("pool", images, np.array([-1, -1, 1, 1]))}
    report = check_report(LTDataset(name="toy", class_names=["a", "b"], splits=splits))
    assert row(report, "pool")[:6] == ["pool", "4", "1", "2", "2", "1.0"]
    assert "in memory" in report


def test_real_places_lt_report(real_splits):
    dataset = build_dataset({"name": "places_lt", "root": None, "split_dir": str(real_splits / "Places_LT")})
    report = check_report(dataset)
    assert row(report, "train")[:9] == ["train", "62500", "365", "4980", "5", "996.0", "131", "163", "71"]
    assert row(report, "test")[:3] == ["test", "36500", "365"]
    assert row(check_report(dataset, "oltr"), "train")[6:9] == ["132", "156", "77"]
