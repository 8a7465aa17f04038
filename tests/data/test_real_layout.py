"""The real-dataset commands of the README on small data laid out like ImageNet and Places365."""
import json

import numpy as np
from PIL import Image

# The classes of the imagenet_root fixture (tests/data/conftest.py): 6 / 4 / 2 training images.
WNIDS = ["n01440764", "n01443537", "n01484850"]


def _image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_imagenet_lt_check_run_and_table(run_cli, imagenet_root, tmp_path):
    code, out, _ = run_cli("data", "check", "imagenet_lt", "--data-root", imagenet_root)
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines() if line.split()[:1] in (["train"], ["test"])] == \
        [["train", "12", "3"], ["test", "6", "3"]]
    assert all(line.rstrip().endswith("0") for line in out.splitlines() if line.startswith(("train", "val ", "test")))

    (imagenet_root / "val" / WNIDS[0] / "ILSVRC2012_val_00000000.JPEG").unlink()
    code, out, _ = run_cli("data", "check", "imagenet_lt", "--data-root", imagenet_root)
    assert next(line for line in out.splitlines() if line.startswith("test")).rstrip().endswith("1 of 6")
    _image(imagenet_root / "val" / WNIDS[0] / "ILSVRC2012_val_00000000.JPEG", 99)

    results = tmp_path / "results"
    code, out, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "imagenet_lt", "--backbone", "tiny",
                             "--data-root", imagenet_root, "--out", results, "--no-progress",
                             "--cfg-options", "runtime.num_workers=2", "text.templates=single")
    assert code == 0, err
    record = json.loads(next((results / "runs" / "imagenet_lt").glob("*.json")).read_text())
    assert record["metrics"]["num_images"] == 6 and len(record["class_counts"]) == 1000
    assert set(record["split_files"]) == {"train", "val", "test"}
    code, out, err = run_cli("run", "--method", "linear_probe", "--dataset", "imagenet_lt", "--backbone", "tiny",
                             "--seed", 1, "--data-root", imagenet_root, "--out", results, "--no-progress",
                             "--cfg-options", "train.epochs=2", "runtime.num_workers=0")
    assert code == 0, err
    code, out, _ = run_cli("table", "--dataset", "imagenet_lt", "--results", results)
    assert code == 0 and "zeroshot_clip" in out and "linear_probe" in out


def test_missing_image_is_a_clear_error(run_cli, imagenet_root, tmp_path, monkeypatch):
    # A cache of its own: features of these split files cached by another test would spare the run
    # from reading the images (the cache keys a split by its file's content).
    monkeypatch.setenv("LTBENCH_CACHE", str(tmp_path / "cache"))
    (imagenet_root / "train" / WNIDS[2] / f"{WNIDS[2]}_0.JPEG").unlink()
    code, _, err = run_cli("run", "--method", "linear_probe", "--dataset", "imagenet_lt", "--backbone", "tiny",
                           "--data-root", imagenet_root, "--out", tmp_path / "r", "--no-progress",
                           "--cfg-options", "runtime.num_workers=0")
    assert code == 2 and f"{WNIDS[2]}_0.JPEG" in err and "ltbench data check" in err
