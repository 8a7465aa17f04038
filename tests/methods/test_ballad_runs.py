"""BALLAD end to end on digits_lt with the random-init tiny CLIP."""
import json
from pathlib import Path

import pytest
import torch

SHORT = ("phase_a.epochs=3", "phase_b.epochs=2")


def _run(run_cli, out, *options, resume=False):
    code, stdout, stderr = run_cli("run", "--method", "ballad", "--dataset", "digits_lt", "--out", out,
                                   "--no-progress", *(["--resume"] if resume else []),
                                   "--cfg-options", *options)
    assert code == 0, stderr
    record_file = stdout.strip().splitlines()[-1].removeprefix("record: ")
    return json.loads(Path(record_file).read_text()), stderr


def _numbers(record):
    return record["metrics"]["per_class_accuracy"], record["extra_metrics"]["after_phase_a"]["per_class_accuracy"]


def test_ballad_beats_zero_shot_of_the_same_tiny_model_by_a_wide_margin(run_cli, tmp_path):
    # 20 phase-A epochs instead of the config's 40 keep the test short.
    record, _ = _run(run_cli, tmp_path, "phase_a.epochs=20")
    code, stdout, _ = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress")
    zero_shot = json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())
    assert zero_shot["metrics"]["overall"] < 20  # chance: random-init text and image towers
    assert record["metrics"]["overall"] > zero_shot["metrics"]["overall"] + 25
    assert record["extra_metrics"]["after_phase_a"]["overall"] > zero_shot["metrics"]["overall"] + 25
    assert {"phase_a", "phase_b", "phase_a_eval"} <= set(record["timings"])
    assert Path(record["artifacts"]["phase_a_checkpoint"]).is_file()


def test_phase_b_from_a_phase_a_checkpoint_reproduces_the_run(run_cli, tmp_path):
    first, _ = _run(run_cli, tmp_path / "a", *SHORT)
    checkpoint = first["artifacts"]["phase_a_checkpoint"]
    second, stderr = _run(run_cli, tmp_path / "b", *SHORT, f"phase_a.checkpoint={checkpoint}")
    assert second["artifacts"]["phase_a_checkpoint"] == checkpoint
    assert not list((tmp_path / "b" / "work").glob("ballad_phase_a__*"))  # no fine-tuning happened
    assert _numbers(second) == _numbers(first)


def test_a_finished_phase_a_serves_runs_that_differ_in_phase_b(run_cli, tmp_path, monkeypatch):
    first, _ = _run(run_cli, tmp_path, *SHORT)

    def no_encoding(*args):
        raise AssertionError("encoded again: features and text classifier should come from the cache")

    from ltbench.models.clip import ClipModel

    monkeypatch.setattr(ClipModel, "encode_images", no_encoding)
    monkeypatch.setattr(ClipModel, "encode_texts", no_encoding)
    monkeypatch.setattr(ClipModel, "encode_text_tokens", no_encoding)
    second, stderr = _run(run_cli, tmp_path, *SHORT, "phase_b.adapter=linear")
    assert "reusing the finished phase A" in stderr
    assert second["artifacts"] == first["artifacts"]
    assert second["extra_metrics"]["after_phase_a"] == first["extra_metrics"]["after_phase_a"]
    assert second["timings"]["phase_a"] < first["timings"]["phase_a"]


def test_interrupted_phase_a_resumes_to_the_uninterrupted_result(run_cli, tmp_path, interrupt_after_saves):
    options = ("phase_a.epochs=4", "phase_b.epochs=2")
    uninterrupted, _ = _run(run_cli, tmp_path / "whole", *options)

    let_it_run = interrupt_after_saves(2)  # after phase A's second epoch
    code, _, stderr = run_cli("run", "--method", "ballad", "--dataset", "digits_lt", "--out", tmp_path / "cut",
                              "--no-progress", "--cfg-options", *options)
    assert code == 130 and "--resume" in stderr
    assert not list((tmp_path / "cut").glob("runs/**/*.json"))
    let_it_run()

    resumed, stderr = _run(run_cli, tmp_path / "cut", *options, resume=True)
    assert "resumed phase_a" in stderr and "after epoch 2" in stderr
    assert _numbers(resumed) == _numbers(uninterrupted)
    # Once phase A is finished only its weights stay: the optimizer state is not needed again.
    assert not list((tmp_path / "cut" / "work").glob("ballad_phase_a__*/phase_a_last.pt"))


def test_best_val_selection_and_class_ce_run(run_cli, tmp_path):
    record, stderr = _run(run_cli, tmp_path, "phase_a.epochs=2", "phase_a.loss=class_ce",
                          "phase_b.epochs=3", "phase_b.select=best_val")
    assert record["config"]["phase_a"]["loss"] == "class_ce"
    assert any((tmp_path / "work").glob("ballad__*/phase_b_best.pt"))


def test_augmented_phases_encode_images_every_step(run_cli, tmp_path):
    record, _ = _run(run_cli, tmp_path, "phase_a.epochs=1", "phase_a.augment.enabled=true",
                     "phase_b.epochs=1", "phase_b.augment.enabled=true")
    assert record["config"]["phase_b"]["augment"]["enabled"] is True
    assert 0 <= record["metrics"]["overall"] <= 100


def test_adapter_only_on_the_given_weights_with_zero_phase_a_epochs(run_cli, tmp_path):
    record, stderr = _run(run_cli, tmp_path, "phase_a.epochs=0", "phase_b.epochs=1")
    assert "0 epochs" in stderr and record["artifacts"] == {}
    assert not list((tmp_path / "work").glob("ballad_phase_a__*"))


@pytest.mark.parametrize("make_checkpoint, message", [
    (lambda path: None, "phase_a.checkpoint not found"),
    (lambda path: path.write_text("not a checkpoint"), "not a readable PyTorch checkpoint"),
    (lambda path: torch.save({"state_dict": {}, "model_name": "RN50"}, path), "written for backbone model RN50"),
    (lambda path: torch.save({"state_dict": {"x": torch.zeros(1)}}, path), "does not fit"),
])
def test_bad_phase_a_checkpoints_are_one_line_errors(run_cli, tmp_path, make_checkpoint, message):
    path = tmp_path / "phase_a.pt"
    make_checkpoint(path)
    code, _, stderr = run_cli("run", "--method", "ballad", "--dataset", "digits_lt", "--out", tmp_path / "out",
                              "--no-progress", "--cfg-options", f"phase_a.checkpoint={path}")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "out").glob("runs/**/*.json"))
