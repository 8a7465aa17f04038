"""A file split's fingerprint (the feature cache's key) follows its image files: path, size and
modification time of each (issue 13, item 3)."""
import os

import numpy as np
import pytest
from PIL import Image

from ltbench.data import build_dataset


def _image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)


def _fingerprint(spec, split="train"):
    return build_dataset(dict(spec)).split(split).fingerprint


@pytest.mark.parametrize("change", ["rewrite", "touch", "delete", "replace_same_size"])
def test_a_changed_image_changes_the_fingerprint(tmp_path, change, folder_dataset):
    spec = folder_dataset(tmp_path)
    before = _fingerprint(spec)
    assert _fingerprint(spec) == before  # stable while nothing changes
    target = tmp_path / "img" / "train_1_2.png"
    if change == "rewrite":
        _image(target, 12345)
    elif change == "touch":
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    elif change == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[-20] ^= 0xFF
        target.write_bytes(bytes(data))
        os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000_000))
    assert _fingerprint(spec) != before
    assert _fingerprint(spec, "test") == _fingerprint(spec, "test")


def test_deleted_images_are_not_served_from_the_cache(run_cli, tmp_path, folder_dataset):
    (tmp_path / "data").mkdir()
    folder_dataset(tmp_path / "data")
    args = ["run", "--method", "zeroshot_clip", "--dataset", "folder_lt", "--backbone", "tiny", "--no-progress", "--data-root",
            tmp_path / "data", "--cfg-options", "dataset.train_list=train.txt", "dataset.test_list=test.txt",
            "dataset.classnames=names.txt", "text.templates=single", f"runtime.cache_dir={tmp_path / 'cache'}"]
    code, _, err = run_cli(*args[:1], "--out", tmp_path / "a", *args[1:])
    assert code == 0, err
    for path in (tmp_path / "data" / "img").glob("test_*"):
        path.unlink()
    code, _, err = run_cli(*args[:1], "--out", tmp_path / "b", *args[1:])
    assert code != 0 and "not found" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "b" / "runs").exists()
