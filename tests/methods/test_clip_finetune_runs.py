"""clip_finetune end to end on digits_lt with the random-init tiny CLIP: it beats zero-shot of the
same model, Balanced Softmax lifts the few-shot classes, an interrupted run resumes to the same
numbers, and settings that train nothing fail before any work."""
import json
from pathlib import Path

import pytest


def _run(run_cli, out, method="clip_finetune", *options, resume=False):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   *(["--resume"] if resume else []), *(["--cfg-options", *options] if options else []))
    assert code == 0, stderr
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text()), stderr


@pytest.mark.slow  # full fine-tuning, twice: outside the inner loop
def test_fine_tuning_beats_zero_shot_and_balanced_softmax_lifts_the_tail(run_cli, tmp_path):
    zero_shot, _ = _run(run_cli, tmp_path, "zeroshot_clip")
    ce, stderr = _run(run_cli, tmp_path, "clip_finetune")
    bs, _ = _run(run_cli, tmp_path, "clip_finetune_bs")
    assert zero_shot["metrics"]["overall"] < 20  # chance: random-init text and image towers
    assert "scope all" in stderr and "finetune" in ce["timings"]
    # Measured at the digits defaults (20 epochs): zero-shot 9.7, CE 51.3 (few 18.0), BS 63.7 (few 51.3).
    assert ce["metrics"]["overall"] > zero_shot["metrics"]["overall"] + 25
    assert bs["metrics"]["overall"] > zero_shot["metrics"]["overall"] + 25
    assert bs["metrics"]["few"] > ce["metrics"]["few"] + 15


@pytest.mark.slow  # two fine-tunings: outside the inner loop
def test_interrupted_fine_tuning_resumes_to_the_uninterrupted_result(run_cli, tmp_path, interrupt_after_saves):
    options = ("train.epochs=3", "trainable.scope=last_blocks", "trainable.last_blocks=1")
    uninterrupted, _ = _run(run_cli, tmp_path / "whole", "clip_finetune", *options)

    let_it_run = interrupt_after_saves(2)  # after the second epoch
    code, _, stderr = run_cli("run", "--method", "clip_finetune", "--dataset", "digits_lt", "--out", tmp_path / "cut",
                              "--no-progress", "--cfg-options", *options)
    assert code == 130 and "--resume" in stderr
    assert not list((tmp_path / "cut").glob("runs/**/*.json"))
    let_it_run()

    resumed, stderr = _run(run_cli, tmp_path / "cut", "clip_finetune", *options, resume=True)
    assert "resumed finetune" in stderr and "after epoch 2" in stderr
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert resumed["extra_metrics"] == uninterrupted["extra_metrics"]


@pytest.mark.parametrize("options, message", [
    (("trainable.scope=last_blocks", "trainable.last_blocks=0", "trainable.head=false"),
     "trainable.last_blocks=0 with trainable.head=false trains nothing"),
    (("trainable.scope=last_blocks", "trainable.last_blocks=5"), "trainable.last_blocks=5 but the image encoder"),
    (("trainable.scope=decoder",), "trainable.scope"),
])
def test_settings_that_train_nothing_fail_before_any_work(run_cli, tmp_path, monkeypatch, options, message):
    from ltbench.engine import trainer

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite bad settings")

    monkeypatch.setattr(trainer.Trainer, "fit", no_training)
    code, _, stderr = run_cli("run", "--method", "clip_finetune", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress", "--cfg-options", *options)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and message in lines[0], stderr
    assert not list(tmp_path.glob("runs/**/*.json"))
