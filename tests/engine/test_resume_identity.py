"""--resume continues only a checkpoint made for the same data and code (issue 13, items 4, 9, 11)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # every test trains, interrupts or resumes a folder_lt run: outside the inner loop


@pytest.fixture
def folder_run(run_cli, tmp_path, folder_dataset):
    root = tmp_path / "data"
    root.mkdir()
    folder_dataset(root, per_class=4)
    args = ["run", "--method", "linear_probe", "--dataset", "folder_lt", "--backbone", "tiny", "--no-progress",
            "--out", tmp_path / "results", "--data-root", root, "--cfg-options", "dataset.train_list=train.txt",
            "dataset.test_list=test.txt", "dataset.classnames=names.txt", "train.epochs=2",
            f"runtime.cache_dir={tmp_path / 'cache'}"]

    def invoke(*extra):
        return run_cli(*args[:1], *extra, *args[1:])

    return root, tmp_path / "results", invoke


def _checkpoint(results: Path) -> Path:
    found = list((results / "work").rglob("*_last.pt"))
    assert len(found) == 1
    return found[0]


def test_resume_with_unchanged_data_continues(folder_run):
    root, results, invoke = folder_run
    code, out, err = invoke()
    assert code == 0, err
    first = json.loads(Path(out.strip().splitlines()[-1].removeprefix("record: ")).read_text())["metrics"]
    code, out, err = invoke("--resume")
    assert code == 0, err
    assert json.loads(Path(out.strip().splitlines()[-1].removeprefix("record: ")).read_text())["metrics"] == first


def test_resume_after_an_image_changed_is_a_one_line_error(folder_run):
    root, results, invoke = folder_run
    code, _, err = invoke()
    assert code == 0, err
    record = next((results / "runs").rglob("*.json"))
    before = record.read_bytes()
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(root / "img" / "train_1_3.png")
    code, _, err = invoke("--resume")
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err
    assert "other data or code" in lines[0] and "splits" in lines[0] and "without --resume" in lines[0]
    assert record.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_checkpoint_on_resume_is_a_one_line_error(folder_run, damage):
    _, results, invoke = folder_run
    code, _, err = invoke()
    assert code == 0, err
    checkpoint = _checkpoint(results)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x80\x04garbage" * 50,
                            "empty": b""}[damage])
    code, _, err = invoke("--resume")
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert str(checkpoint) in lines[0] and "without --resume" in lines[0]


def test_a_checkpoint_that_unpickles_code_is_refused(folder_run):
    import torch

    _, results, invoke = folder_run
    code, _, err = invoke()
    assert code == 0, err
    checkpoint = _checkpoint(results)
    state = torch.load(checkpoint, weights_only=True)
    state["history"] = [Path("/")]  # an object weights_only=True will not unpickle
    torch.save(state, checkpoint)
    code, _, err = invoke("--resume")
    assert code != 0 and len(err.strip().splitlines()) == 1 and str(checkpoint) in err
