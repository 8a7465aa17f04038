import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.data import build_dataset, classnames
from ltbench.data.base import FileSplit
from ltbench.metrics import group_sizes


def write_image(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color=(200, 30, 30)).save(path)


def write_lines(path: Path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def places_class_folders():
    return ["airfield", "apartment_building-outdoor"] + [f"scene_{i:03d}" for i in range(363)]


def make_places(tmp_path, names_count=365):
    """A Places-LT look-alike: 365 classes, images for the first two, split files in splits/."""
    root, split_dir = tmp_path / "places", tmp_path / "splits"
    folders = places_class_folders()
    write_lines(split_dir / "classnames.txt", [f"{name} {name}" for name in folders[:names_count]])
    train = [f"train/airfield/{i:08d}.jpg 0" for i in range(1, 4)] + ["train/apartment_building-outdoor/00000001.jpg 1"]
    val = ["train/airfield/00000009.jpg 0", "train/apartment_building-outdoor/00000009.jpg 1"]
    test = ["val/airfield/Places365_val_00000001.jpg 0", "val/apartment_building-outdoor/Places365_val_00000002.jpg 1"]
    for name, lines in (("train", train), ("val", val), ("test", test)):
        write_lines(split_dir / f"Places_LT_{name}.txt", lines)
        for line in lines:
            write_image(root / line.rpartition(" ")[0])
    return {"name": "places_lt", "root": str(root), "split_dir": str(split_dir)}


def test_all_datasets_are_registered_with_descriptions():
    described = dict(registry.describe(registry.DATASETS))
    for name in ("imagenet_lt", "places_lt", "inat2018", "folder_lt", "cifar10_lt", "cifar100_lt"):
        assert described[name]


def test_places_lt_builds_file_splits(tmp_path):
    options = make_places(tmp_path)
    dataset = build_dataset(options)
    assert dataset.num_classes == 365
    assert dataset.class_names[:2] == ["airfield", "outdoor apartment building"]
    assert {name: len(split) for name, split in dataset.splits.items()} == {"train": 4, "val": 2, "test": 2}
    train = dataset.split("train")
    assert isinstance(train, FileSplit) and train.root == Path(options["root"])
    assert train.image_path(3).is_file()
    assert train.list_file == Path(options["split_dir"]) / "Places_LT_train.txt"
    assert dataset.split_files == {name: split.list_sha256 for name, split in dataset.splits.items()}
    assert dataset.class_counts[:3].tolist() == [3, 1, 0]
    assert "val/" in dataset.notes["test"]


def test_split_dir_defaults_to_the_data_root(tmp_path):
    options = make_places(tmp_path)
    for path in Path(options["split_dir"]).iterdir():
        path.rename(Path(options["root"]) / path.name)
    dataset = build_dataset({"name": "places_lt", "root": options["root"], "split_dir": None})
    assert len(dataset.split("train")) == 4


def test_no_root_and_no_split_dir_is_a_user_error():
    with pytest.raises(UserError, match="--split-dir"):
        build_dataset({"name": "places_lt", "root": None, "split_dir": None})


def test_missing_data_root_is_allowed_at_build_time(tmp_path):
    options = make_places(tmp_path)
    dataset = build_dataset({**options, "root": str(tmp_path / "not_there")})
    assert len(dataset.split("test")) == 2
    assert build_dataset({**options, "root": None}).split("train").root is None


def test_classnames_count_mismatch(tmp_path):
    options = make_places(tmp_path, names_count=364)
    with pytest.raises(UserError, match=r"classnames\.txt has 364 names but places_lt has 365 classes"):
        build_dataset(options)


def test_malformed_split_line_names_file_and_line(tmp_path):
    options = make_places(tmp_path)
    path = Path(options["split_dir"]) / "Places_LT_val.txt"
    write_lines(path, ["train/airfield/00000009.jpg 0", "train/airfield/00000010.jpg zero"])
    with pytest.raises(UserError, match=r"Places_LT_val\.txt:2: expected"):
        build_dataset(options)


def test_label_out_of_range_names_file_and_line(tmp_path):
    options = make_places(tmp_path)
    path = Path(options["split_dir"]) / "Places_LT_test.txt"
    write_lines(path, ["val/airfield/a.jpg 0", "", "val/airfield/b.jpg 365"])
    with pytest.raises(UserError, match=r"Places_LT_test\.txt:3: label 365 is outside 0\.\.364"):
        build_dataset(options)


def test_missing_split_file_names_expected_path_and_hint(tmp_path):
    options = make_places(tmp_path)
    expected = Path(options["split_dir"]) / "Places_LT_train.txt"
    expected.unlink()
    with pytest.raises(UserError) as error:
        build_dataset(options)
    message = str(error.value)
    assert str(expected) in message
    assert "--split-dir" in message and "Places_LT_val.txt" in message
    assert "ltbench data check places_lt" in message


def test_missing_split_file_is_recorded_for_data_check(tmp_path):
    options = make_places(tmp_path)
    (Path(options["split_dir"]) / "Places_LT_train.txt").unlink()
    dataset = build_dataset(options, require_all_splits=False)
    assert set(dataset.splits) == {"val", "test"}
    assert "Places_LT_train.txt" in dataset.missing["train"]
    with pytest.raises(UserError, match="Places_LT_train.txt"):
        dataset.split("train")


def test_class_names_are_required_even_for_data_check(tmp_path):
    options = make_places(tmp_path)
    (Path(options["split_dir"]) / "classnames.txt").unlink()
    with pytest.raises(UserError, match="classnames.txt"):
        build_dataset(options, require_all_splits=False)


def test_missing_split_folder_is_named(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_dataset({"name": "imagenet_lt", "root": None, "split_dir": str(tmp_path / "nowhere")})


@pytest.fixture
def fake_clip_names(monkeypatch):
    # Avoids importing open_clip here; the real names are checked against the real split files below.
    monkeypatch.setitem(classnames.BUILTIN_CLASS_NAMES, "imagenet_clip", lambda: [f"class {i}" for i in range(1000)])


def make_imagenet_splits(split_dir: Path):
    write_lines(split_dir / "ImageNet_LT_train.txt", ["train/n01440764/n01440764_190.JPEG 0"])
    write_lines(split_dir / "ImageNet_LT_val.txt", ["train/n01440764/n01440764_762.JPEG 0"])
    write_lines(split_dir / "ImageNet_LT_test.txt", ["val/n01440764/ILSVRC2012_val_00000001.JPEG 0",
                                                     "val/n01443537/ILSVRC2012_val_00000002.JPEG 999"])


def test_imagenet_lt_uses_clip_names_and_checks_wnid_file(tmp_path, fake_clip_names):
    make_imagenet_splits(tmp_path)
    options = {"name": "imagenet_lt", "root": None, "split_dir": str(tmp_path)}
    dataset = build_dataset(options)
    assert dataset.class_names[999] == "class 999"
    assert dataset.split("test").labels.tolist() == [0, 999]
    assert "wnid" in dataset.notes["test"] and "sorted" in dataset.notes["test"]
    write_lines(tmp_path / "classnames.txt", [f"n{i:08d} name" for i in range(999)])
    with pytest.raises(UserError, match=r"classnames\.txt has 999 names but imagenet_lt has 1000 classes"):
        build_dataset(options)


def test_inat2018_val_is_also_the_test_split(tmp_path):
    write_lines(tmp_path / "iNaturalist18_train.txt", ["train_val2018/Plantae/7291/a.jpg 7291"])
    write_lines(tmp_path / "iNaturalist18_val.txt", ["train_val2018/Insecta/673/b.jpg 673"])
    (tmp_path / "categories.json").write_text(json.dumps([{"id": i, "name": f"Genus species{i}"} for i in range(8142)]))
    dataset = build_dataset({"name": "inat2018", "root": None, "split_dir": str(tmp_path)})
    assert dataset.num_classes == 8142
    assert dataset.split("test").paths == dataset.split("val").paths
    assert dataset.split_files["test"] == dataset.split_files["val"]
    assert "test" in dataset.notes and "val" in dataset.notes["test"]


def make_folder_dataset(tmp_path):
    lists = tmp_path / "lists"
    write_lines(lists / "names.txt", ["red fox", "grey wolf", "lynx"])
    write_lines(lists / "train.txt", ["train/fox/1.png 0", "train/fox/2.png 0", "train/wolf/1.png 1",
                                      "train/lynx/1.png 2"])
    write_lines(lists / "test.txt", ["test/fox/1.png 0", "test/wolf/1.png 1", "test/lynx/1.png 2"])
    return {"name": "folder_lt", "root": str(tmp_path / "images"), "split_dir": str(lists),
            "train_list": "train.txt", "test_list": "test.txt", "classnames": "names.txt"}


def test_folder_lt_without_val_uses_test(tmp_path):
    dataset = build_dataset(make_folder_dataset(tmp_path))
    assert dataset.class_names == ["red fox", "grey wolf", "lynx"]
    assert dataset.split("val").name == "val"
    assert dataset.split("val").paths == dataset.split("test").paths
    assert "test" in dataset.notes["val"]


def test_folder_lt_resolves_absolute_lists_and_reads_pool(tmp_path):
    options = make_folder_dataset(tmp_path)
    pool = write_lines(tmp_path / "elsewhere" / "pool.txt", ["pool/a.png -1", "pool/b.png 2"])
    dataset = build_dataset({**options, "val_list": str(tmp_path / "lists" / "test.txt"), "pool_list": str(pool)})
    assert dataset.split("pool").labels.tolist() == [-1, 2]
    assert dataset.split_files["pool"] == dataset.split("pool").list_sha256
    assert "val" not in dataset.notes
    write_lines(pool, ["pool/a.png 3"])
    with pytest.raises(UserError, match=r"pool\.txt: pool label 3 is outside -1\.\.2"):
        build_dataset({**options, "pool_list": str(pool)})


def test_folder_lt_option_errors(tmp_path):
    options = make_folder_dataset(tmp_path)
    with pytest.raises(UserError, match="dataset.train_list"):
        build_dataset({**options, "train_list": None})
    with pytest.raises(UserError, match=r"lists/missing\.txt"):
        build_dataset({**options, "val_list": "missing.txt"})
    dataset = build_dataset({**options, "test_list": "missing.txt"}, require_all_splits=False)
    assert set(dataset.missing) == {"test", "val"} and set(dataset.splits) == {"train"}


def test_real_places_lt_train_profile(real_splits):
    dataset = build_dataset({"name": "places_lt", "root": None, "split_dir": str(real_splits / "Places_LT")})
    counts = dataset.class_counts
    assert len(dataset.split("train")) == 62500 and dataset.num_classes == 365
    assert (counts.max(), counts.min()) == (4980, 5)
    assert group_sizes(counts) == {"many": 131, "medium": 163, "few": 71}
    assert group_sizes(counts, "oltr") == {"many": 132, "medium": 156, "few": 77}
    assert (len(dataset.split("val")), len(dataset.split("test"))) == (7300, 36500)


def test_real_imagenet_lt_without_train_file(real_splits):
    dataset = build_dataset({"name": "imagenet_lt", "root": None, "split_dir": str(real_splits / "ImageNet_LT")},
                            require_all_splits=False)
    assert (len(dataset.split("test")), len(dataset.split("val"))) == (50000, 20000)
    assert "ImageNet_LT_train.txt" in dataset.missing["train"]
    assert dataset.num_classes == 1000 and dataset.class_names[0] == "tench"
    assert np.bincount(dataset.split("test").labels).tolist() == [50] * 1000


def test_real_inat2018_val(real_splits):
    dataset = build_dataset({"name": "inat2018", "root": None, "split_dir": str(real_splits / "iNaturalist18")},
                            require_all_splits=False)
    assert len(dataset.split("val")) == 24426 and len(dataset.split("test")) == 24426
    assert dataset.num_classes == 8142
    assert "iNaturalist18_train.txt" in dataset.missing["train"]
