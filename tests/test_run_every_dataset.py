"""Every registered dataset runs end to end through `ltbench run` (on tiny fakes of its layout)."""
import json

import numpy as np
import pytest
from PIL import Image

from test_datasets_cifar import make_cifar10


def _image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(path)


def _write_split(root, split_file, entries):
    for seed, (relative, _) in enumerate(entries):
        _image(root / relative, seed)
    split_file.write_text("".join(f"{relative} {label}\n" for relative, label in entries))


def _places(root):
    names = [f"category_{i}" for i in range(365)]
    (root / "classnames.txt").write_text("".join(f"{n} {n}\n" for n in names))
    for split, folder in (("train", "train"), ("val", "train"), ("test", "val")):
        entries = [(f"{folder}/{names[c]}/{split}_{i}.jpg", c) for c in range(3) for i in range(3 - c)]
        _write_split(root, root / f"Places_LT_{split}.txt", entries)
    return ["--data-root", root]


def _inat(root):
    categories = [{"id": i, "name": f"Genus species{i}"} for i in range(8142)]
    (root / "categories.json").write_text(json.dumps(categories))
    for split in ("train", "val"):
        entries = [(f"train_val2018/Plantae/{c}/{split}_{i}.jpg", c) for c in range(3) for i in range(2)]
        _write_split(root, root / f"iNaturalist18_{split}.txt", entries)
    return ["--data-root", root]


def _folder(root):
    (root / "names.txt").write_text("cat\ndog\nbird\n")
    for split in ("train", "val", "test"):
        _write_split(root, root / f"{split}.txt", [(f"img/{split}_{c}_{i}.png", c) for c in range(3) for i in range(2)])
    return ["--data-root", root, "--cfg-options", "dataset.train_list=train.txt", "dataset.val_list=val.txt",
            "dataset.test_list=test.txt", "dataset.classnames=names.txt"]


def _cifar10(root):
    make_cifar10(root, per_class=20, test_per_class=4)
    return ["--data-root", root, "--cfg-options", "dataset.imbalance_ratio=10", "dataset.download=false"]


@pytest.mark.parametrize("dataset, make, num_classes", [
    ("places_lt", _places, 365), ("inat2018", _inat, 8142), ("folder_lt", _folder, 3), ("cifar10_lt", _cifar10, 10),
])
def test_zero_shot_and_linear_probe_run(run_cli, tmp_path, dataset, make, num_classes):
    root = tmp_path / "data"
    root.mkdir()
    args = make(root)
    cfg = [] if "--cfg-options" in args else ["--cfg-options"]
    results = tmp_path / "results"
    for method, extra in (("zeroshot_clip", ["text.templates=single"]), ("linear_probe", ["train.epochs=2"])):
        code, _, err = run_cli("run", "--method", method, "--dataset", dataset, "--backbone", "tiny", "--out", results,
                               "--no-progress", *args, *cfg, *extra, "runtime.num_workers=0")
        assert code == 0, err
    records = [json.loads(path.read_text()) for path in (results / "runs" / dataset).glob("*.json")]
    assert sorted(r["method"] for r in records) == ["linear_probe", "zeroshot_clip"]
    assert all(len(r["metrics"]["per_class_accuracy"]) == num_classes for r in records)
