"""End-to-end: run -> record -> table on digits_lt with the tiny CLIP, and the CLI's errors."""
import json
import os
import subprocess
import sys

import pytest

FAST = ["--no-progress"]


def _record_files(out):
    return sorted((out / "runs").rglob("*.json"))


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
def test_list_commands(run_cli):
    code, out, _ = run_cli("list", "methods")
    assert code == 0 and "zeroshot_clip" in out and "linear_probe" in out
    code, out, _ = run_cli("list", "datasets")
    for name in ("digits_lt", "cifar10_lt", "cifar100_lt", "imagenet_lt", "places_lt", "inat2018", "folder_lt"):
        assert name in out
    code, out, _ = run_cli("list", "backbones")
    assert code == 0 and "tiny" in out and "RN50:openai" in out and "ViT-B-16:openai" in out


def test_run_record_table_over_seeds(run_cli, tmp_path):
    out = tmp_path / "results"
    for seed in (0, 1):
        code, stdout, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt",
                                       "--seed", seed, "--out", out, *FAST)
        assert code == 0, stderr
        assert "overall" in stdout
    code, _, stderr = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", out,
                              "--cfg-options", "train.epochs=5", *FAST)
    assert code == 0, stderr
    records = [json.loads(path.read_text()) for path in _record_files(out)]
    assert len(records) == 3
    for record in records:
        metrics = record["metrics"]
        assert record["backbone"] == "tiny" and record["dataset"] == "digits_lt"
        assert record["eval_split"] == "test" and metrics["num_images"] == 300
        assert len(metrics["per_class_accuracy"]) == 10 == len(record["class_counts"])
        assert record["class_counts"] == [130, 84, 54, 35, 22, 14, 9, 6, 4, 2]
        assert metrics["group_sizes"] == {"many": 1, "medium": 4, "few": 5}
        assert record["config"]["method"] == record["method"]
        assert "val" in record["extra_metrics"] and record["timings"]["total"] > 0
        assert record["versions"]["torch"] and record["device"] == "cpu"
    zero_shot = [r for r in records if r["method"] == "zeroshot_clip"]
    assert {r["seed"] for r in zero_shot} == {0, 1} and len({r["config_hash"] for r in zero_shot}) == 1

    code, stdout, _ = run_cli("table", "--dataset", "digits_lt", "--results", out)
    assert code == 0
    table = (out / "tables" / "digits_lt.md").read_text()
    assert table in stdout
    lines = [line for line in table.splitlines() if line.startswith(("| zeroshot_clip", "| linear_probe"))]
    assert [line.split("|")[1].strip() for line in lines] == ["linear_probe", "zeroshot_clip"]
    assert "±" in lines[1] and lines[1].split("|")[4].strip() == "2"  # two seeds, mean ± std
    code, stdout, _ = run_cli("table", "--results", out, "--format", "csv")
    assert code == 0 and (out / "tables" / "digits_lt.csv").exists()


def test_second_run_encodes_nothing_and_skip_existing(run_cli, tmp_path, monkeypatch):
    from ltbench.engine import features

    out = tmp_path / "results"
    args = ("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", out,
            "--cfg-options", "train.epochs=2", *FAST)
    assert run_cli(*args)[0] == 0
    record = _record_files(out)[0]
    written = record.read_text()

    def no_encoding(*args, **kwargs):
        raise AssertionError("images were encoded again")

    monkeypatch.setattr(features, "extract_image_features", no_encoding)
    code, stdout, _ = run_cli(*args, "--skip-existing")
    assert code == 0 and "skipped" in stdout and record.read_text() == written
    code, _, stderr = run_cli(*args)  # a rerun: features come from the cache
    assert code == 0, stderr


def test_resume_continues_from_the_epoch_checkpoint(run_cli, tmp_path):
    out = tmp_path / "results"
    args = ("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", out, *FAST)
    assert run_cli(*args, "--cfg-options", "train.epochs=3")[0] == 0
    reference = json.loads(_record_files(out)[0].read_text())["metrics"]
    checkpoint = next((out / "work").rglob("linear_probe_last.pt"))
    import torch

    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 2
    # Pretend the run died after its first epoch: roll the checkpoint back by rerunning 1 epoch
    # of the same schedule is not possible, so truncate through the trainer's own state instead.
    out2 = tmp_path / "results2"
    from ltbench.engine import trainer

    calls = {"n": 0}
    save = trainer.save_atomic

    def save_then_stop(state, path):
        save(state, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    trainer.save_atomic = save_then_stop
    try:
        code, _, stderr = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", out2,
                                  "--cfg-options", "train.epochs=3", *FAST)
    finally:
        trainer.save_atomic = save
    assert code == 130 and "--resume" in stderr and not _record_files(out2)
    code, _, stderr = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", out2,
                              "--cfg-options", "train.epochs=3", "--resume", *FAST)
    assert code == 0, stderr
    resumed = json.loads(_record_files(out2)[0].read_text())["metrics"]
    assert resumed["per_class_accuracy"] == reference["per_class_accuracy"]


@pytest.mark.parametrize("args, message", [
    (("--method", "zeroshot", "--dataset", "digits_lt"), r"unknown method 'zeroshot' \(did you mean: zeroshot_clip"),
    (("--method", "zeroshot_clip", "--dataset", "digit_lt"), r"unknown dataset 'digit_lt' \(did you mean: digits_lt"),
    (("--method", "zeroshot_clip", "--dataset", "digits_lt", "--backbone", "RN51:openai"), r"unknown backbone model 'RN51'"),
    (("--method", "zeroshot_clip", "--dataset", "digits_lt", "--cfg-options", "text.template=single"),
     r"unknown config key 'text.template' \(did you mean: text.templates"),
    (("--method", "zeroshot_clip", "--dataset", "places_lt"), r"split_dir|--split-dir|data root"),
])
def test_user_errors_are_one_line_exit_2_and_leave_records_alone(run_cli, tmp_path, args, message):
    import re

    out = tmp_path / "results"
    keep = out / "runs" / "digits_lt" / "existing.json"
    keep.parent.mkdir(parents=True)
    keep.write_text('{"kept": true}')
    code, stdout, stderr = run_cli("run", *args, "--out", out, *FAST)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("ltbench: error:")
    assert re.search(message, stderr), stderr
    assert "Traceback" not in stderr and keep.read_text() == '{"kept": true}'
    assert [p.name for p in _record_files(out)] == ["existing.json"]


def test_missing_data_root_points_to_data_check(run_cli, tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "names.txt").write_text("cat\ndog\nbird\n")
    for name in ("train", "test"):
        (splits / f"{name}.txt").write_text("train/c0/a.jpg 0\ntrain/c1/b.jpg 1\ntrain/c2/c.jpg 2\n")
    code, _, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "folder_lt", "--split-dir", splits,
                              "--data-root", tmp_path / "nowhere", "--out", tmp_path / "r", *FAST,
                              "--cfg-options", "dataset.train_list=train.txt", "dataset.test_list=test.txt",
                              "dataset.classnames=names.txt")
    assert code == 2 and "nowhere" in stderr and "ltbench data check folder_lt" in stderr


@pytest.mark.slow  # a fresh interpreter: outside the inner loop
@pytest.mark.e2e
def test_console_script_prints_no_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "ltbench", "run", "--method", "nope", "--dataset", "digits_lt",
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("ltbench: error: unknown method 'nope'")


def test_data_check_on_the_real_places_split(run_cli, real_splits):
    code, out, _ = run_cli("data", "check", "places_lt", "--split-dir", real_splits / "Places_LT")
    assert code == 0
    train = next(line for line in out.splitlines() if line.startswith("train"))
    assert train.split()[:9] == ["train", "62500", "365", "4980", "5", "996.0", "131", "163", "71"]
