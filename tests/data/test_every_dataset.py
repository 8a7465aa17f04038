"""Every registered dataset runs end to end through `ltbench run` (on a tiny fake of its layout,
from FAKE_LAYOUTS in tests/data/conftest.py)."""
import json

import pytest

from ltbench.core import registry


@pytest.mark.parametrize("dataset", registry.names(registry.DATASETS))
def test_zero_shot_and_linear_probe_run(run_cli, tmp_path, fake_layouts, dataset):
    if dataset not in fake_layouts:
        pytest.fail(f"dataset '{dataset}' is registered but has no fake layout to run on: add a maker for it "
                    f"to FAKE_LAYOUTS in tests/data/conftest.py", pytrace=False)
    root = tmp_path / "data"
    root.mkdir()
    args, num_classes = fake_layouts[dataset](root)
    cfg = [] if "--cfg-options" in args else ["--cfg-options"]
    results = tmp_path / "results"
    for method, extra in (("zeroshot_clip", ["text.templates=single"]), ("linear_probe", ["train.epochs=2"])):
        code, _, err = run_cli("run", "--method", method, "--dataset", dataset, "--backbone", "tiny", "--out", results,
                               "--no-progress", *args, *cfg, *extra, "runtime.num_workers=0")
        assert code == 0, err
    records = [json.loads(path.read_text()) for path in (results / "runs" / dataset).glob("*.json")]
    assert sorted(r["method"] for r in records) == ["linear_probe", "zeroshot_clip"]
    assert all(len(r["metrics"]["per_class_accuracy"]) == num_classes for r in records)
