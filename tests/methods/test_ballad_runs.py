"""BALLAD end to end on digits_lt with the random-init tiny CLIP."""
import json
import re
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


@pytest.mark.slow  # 20 phase-A epochs: outside the inner loop
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


@pytest.mark.slow  # two BALLAD runs: outside the inner loop
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


@pytest.mark.slow  # two BALLAD runs: outside the inner loop
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


@pytest.mark.slow  # 3 + 6 epochs: outside the inner loop
def test_best_val_keeps_the_best_val_epoch_after_a_class_ce_phase_a(run_cli, tmp_path, monkeypatch):
    """phase_a.loss=class_ce trains phase A on [B, C] class logits, never the contrastive loss;
    phase_b.select=best_val ends with the adapter of the best val epoch, here not the last one."""
    from ltbench.engine import finetune, hooks

    class_logits, val_top1 = [], []

    class Functional:  # torch.nn.functional, its cross_entropy noting the logits' shape
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        @staticmethod
        def cross_entropy(logits, labels, *args, **kwargs):
            class_logits.append(tuple(logits.shape))
            return torch.nn.functional.cross_entropy(logits, labels, *args, **kwargs)

    def no_contrastive(*args, **kwargs):
        raise AssertionError("phase_a.loss=class_ce computed the contrastive loss")

    after_epoch = hooks.BestOnVal.after_epoch

    def noting_val(self, epoch):
        note = after_epoch(self, epoch)
        val_top1.append(float(re.match(r"val top-1 ([\d.]+) ", note).group(1)))
        return note

    monkeypatch.setattr(finetune, "F", Functional())
    monkeypatch.setattr(finetune, "global_batch_contrastive", no_contrastive)
    monkeypatch.setattr(hooks.BestOnVal, "after_epoch", noting_val)
    record, stderr = _run(run_cli, tmp_path, "phase_a.epochs=3", "phase_a.loss=class_ce",
                          "phase_b.epochs=6", "phase_b.select=best_val")
    assert "phase A: class_ce loss" in stderr
    assert class_logits and all(shape[1] == 10 for shape in class_logits)  # one logit per digits_lt class
    assert len(val_top1) == 6
    best = val_top1.index(max(val_top1))
    assert best < 5 and val_top1[-1] < max(val_top1)  # (seeded) so keeping the last epoch would show
    # The record's val numbers are the final adapter's: the best epoch's, not the last one's.
    assert record["extra_metrics"]["val"]["overall"] == pytest.approx(max(val_top1))
    assert any((tmp_path / "work").glob("ballad__*/phase_b_best.pt"))


def test_augmented_phase_b_encodes_images_every_step(run_cli, tmp_path, monkeypatch):
    """With phase_b.augment.enabled, phase B cannot read cached features: each step encodes its
    (augmented) images through the frozen model."""
    from ltbench.methods.ballad.method import Ballad

    encoded = []
    encode_then_classify = Ballad._encode_then_classify

    def noting_images(self, classifier, images):
        encoded.append(len(images))
        return encode_then_classify(self, classifier, images)

    monkeypatch.setattr(Ballad, "_encode_then_classify", noting_images)
    record, _ = _run(run_cli, tmp_path, "phase_a.epochs=1", "phase_a.augment.enabled=true",
                     "phase_b.epochs=2", "phase_b.augment.enabled=true")
    batch_size = record["config"]["phase_b"]["batch_size"]
    steps = max(1, sum(record["class_counts"]) // batch_size)  # per epoch, the public code's count
    assert len(encoded) == 2 * steps and all(count == batch_size for count in encoded)


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
