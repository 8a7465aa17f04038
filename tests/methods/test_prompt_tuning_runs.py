"""prompt_tuning / prompt_tuning_bs end to end on digits_lt with the random-init tiny CLIP:
they beat zero-shot of the same model, a learnt context is kept and loads for evaluation, an
interrupted run resumes to the same numbers, and bad settings fail in one line before any work."""
import json
from pathlib import Path

import pytest


def _run(run_cli, out, method, *options, resume=False):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   *(["--resume"] if resume else []), *(["--cfg-options", *options] if options else []))
    assert code == 0, stderr
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text()), stderr


def _numbers(record):
    return json.dumps({"metrics": record["metrics"], "extra_metrics": record["extra_metrics"]}, sort_keys=True)


@pytest.fixture(scope="module")
def zeroshot(tmp_path_factory):
    from ltbench.app.cli import main

    out = tmp_path_factory.mktemp("zeroshot")
    assert main(["run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", str(out), "--no-progress"]) == 0
    record = next(out.glob("runs/**/*.json"))
    return json.loads(record.read_text())["metrics"]["overall"]


def test_prompt_tuning_with_ce_beats_zero_shot_and_its_context_loads_for_evaluation(run_cli, tmp_path, zeroshot):
    record, _ = _run(run_cli, tmp_path / "train", "prompt_tuning")
    assert record["metrics"]["overall"] > zeroshot + 3, (record["metrics"]["overall"], zeroshot)
    context = Path(record["artifacts"]["prompt_context"])
    assert context.is_file() and record["details"]["prompt_tuning"]["context_shape"] == [10, 16, 64]
    assert not list(context.parent.glob("*_last.pt"))  # the optimizer state goes once the context is saved

    loaded, stderr = _run(run_cli, tmp_path / "eval", "prompt_tuning", f"context.checkpoint={context}")
    assert "epoch" not in stderr  # nothing trained
    assert loaded["metrics"] == record["metrics"]


def test_an_interrupted_prompt_tuning_bs_resumes_to_the_uninterrupted_result(run_cli, tmp_path, interrupt_after_saves, zeroshot):
    options = ("train.epochs=6",)
    whole, _ = _run(run_cli, tmp_path / "whole", "prompt_tuning_bs", *options)
    assert whole["metrics"]["overall"] > zeroshot + 3, (whole["metrics"]["overall"], zeroshot)

    let_it_run = interrupt_after_saves(3)  # after the third epoch
    code, _, stderr = run_cli("run", "--method", "prompt_tuning_bs", "--dataset", "digits_lt", "--out",
                              tmp_path / "cut", "--no-progress", "--cfg-options", *options)
    assert code == 130 and "--resume" in stderr
    let_it_run()
    resumed, stderr = _run(run_cli, tmp_path / "cut", "prompt_tuning_bs", *options, resume=True)
    assert "resumed train" in stderr and "after epoch 3" in stderr
    assert _numbers(resumed) == _numbers(whole)


@pytest.mark.parametrize("option, message", [
    ("context.n_ctx=0", "context.n_ctx=0: expected a whole number >= 1"),
    ("context.class_position=top", "context.class_position"),
    ("context.init=phrase context.n_ctx=2",
     "context.init_phrase='a photo of a' is 4 tokens, longer than context.n_ctx=2"),
    # Settings that train nothing (the declared TRAINING options say so).
    ("train.epochs=0", "train.epochs=0: expected a whole number >= 1"),
    ("train.lr=0", "train.lr=0: expected a finite number > 0"),
    ("train.warmup_lr=-1", "train.warmup_lr=-1: expected a finite number > 0 or null (the lr of a constant warmup"),
    ("train.warmup_lr=null", "train.warmup_lr=None: warmup_type constant needs the warmup's lr"),
    ("text_chunk=0", "text_chunk=0: expected a whole number >= 1"),
])
def test_bad_settings_are_one_line_errors_before_any_work(run_cli, tmp_path, monkeypatch, option, message):
    from ltbench.engine import features

    def no_work(*args, **kwargs):
        raise AssertionError("image features computed before the settings were checked")

    monkeypatch.setattr(features, "extract_image_features", no_work)
    code, _, stderr = run_cli("run", "--method", "prompt_tuning", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress", "--cfg-options", *option.split())
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and message in lines[0], stderr


def test_augmented_training_encodes_the_images_every_step_and_other_layouts_run(run_cli, tmp_path, monkeypatch):
    from ltbench.models.clip import ClipModel

    calls = {"n": 0}
    encode = ClipModel.encode_images

    def counted(self, images):
        calls["n"] += 1
        return encode(self, images)

    monkeypatch.setattr(ClipModel, "encode_images", counted)
    record, _ = _run(run_cli, tmp_path, "prompt_tuning", "train.epochs=1", "train.augment.enabled=true",
                     "context.class_specific=false", "context.class_position=middle", "context.init=phrase",
                     "context.n_ctx=6")
    steps = 12  # 380 training images in batches of 32
    assert calls["n"] >= steps  # every training batch, besides the evaluation splits
    assert record["details"]["prompt_tuning"]["context_shape"] == [6, 64]


@pytest.mark.parametrize("state, message", [
    ({"format": "something else"}, "is not a learnt context of prompt_tuning"),
    ({"format": "ltbench.prompt_tuning.context/1", "model_name": "ltbench-tiny", "ctx": [[0.0]]},
     "holds a context of shape"),
])
def test_a_context_checkpoint_that_does_not_fit_is_a_one_line_error(run_cli, tmp_path, state, message):
    import torch

    path = tmp_path / "context.pt"
    torch.save({key: torch.tensor(value) if key == "ctx" else value for key, value in state.items()}, path)
    code, _, stderr = run_cli("run", "--method", "prompt_tuning", "--dataset", "digits_lt", "--out", tmp_path / "out",
                              "--no-progress", "--cfg-options", f"context.checkpoint={path}")
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert code != 0 and message in lines[-1] and str(path) in lines[-1], stderr
