"""Finished stages are keyed on the precision a run computes at (RunContext.precision), not on
the amp setting a CPU run ignores (finding 8 of issue 22): a stage trained in fp32 on a CPU is not
reused by a bf16 GPU run, while amp on or off on a CPU shares one stage."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ltbench.config import RunRequest, config_hash, parse_cfg_options, resolve
from ltbench.engine.context import RunContext


def _cfg(method, *options):
    return resolve(RunRequest(method=method, dataset="digits_lt", options=parse_cfg_options(options)))


def _phase_a(cfg, precision):
    from ltbench.engine.finetune import phase_a_identity

    return phase_a_identity(cfg, precision)


def _decoder(cfg, precision):
    from ltbench.methods.decoder.settings import stage1_identity

    return stage1_identity(cfg, precision)


def _prompt_tuning(cfg, precision):
    from ltbench.methods.prompt_tuning.settings import context_identity

    return context_identity(cfg, precision)


def _lift(cfg, precision):
    from ltbench.methods.lift.method import training_identity

    clip = SimpleNamespace(is_clip=True, visual_fingerprint=lambda: "v" * 64, text_fingerprint=lambda: "t" * 64)
    return training_identity(cfg, clip, precision)


STAGES = [("ballad", _phase_a), ("decoder", _decoder), ("prompt_tuning", _prompt_tuning), ("lift", _lift)]


@pytest.mark.parametrize("method,identity", STAGES, ids=[method for method, _ in STAGES])
def test_a_stage_is_keyed_on_the_precision_used_not_on_amp(method, identity):
    amp_on, amp_off = _cfg(method, "amp=true"), _cfg(method, "amp=false")
    assert config_hash(identity(amp_on, "fp32")) != config_hash(identity(amp_on, "bf16"))
    assert config_hash(identity(amp_on, "fp32")) == config_hash(identity(amp_off, "fp32"))


def test_prompt_contexts_learnt_on_features_of_gpu_decoded_images_are_apart():
    plain, gpu = _cfg("prompt_tuning"), _cfg("prompt_tuning", "gpu_jpeg=true")
    assert config_hash(_prompt_tuning(plain, "bf16")) != config_hash(_prompt_tuning(gpu, "bf16"))
    augmented = ("train.augment.enabled=true",)  # trains on images: the loaders decode with Pillow
    assert config_hash(_prompt_tuning(_cfg("prompt_tuning", *augmented), "bf16")) == \
        config_hash(_prompt_tuning(_cfg("prompt_tuning", "gpu_jpeg=true", *augmented), "bf16"))


def test_a_cpu_fp32_stage_is_not_reused_by_a_bf16_run(run_cli, tmp_path, monkeypatch):
    """The decoder's stage 1 trained on the CPU, then a run whose context computes in bf16 (a
    GPU's, simulated: the CPU run's precision property says bf16)."""
    options = ["--cfg-options", "stage1.iterations=2", "stage1.warmup_iterations=0", "stage2.iterations=2",
               "dataset.max_per_class=12", "dataset.imbalance_ratio=3", "dataset.test_per_class=2",
               "dataset.val_per_class=2"]

    def run():
        code, stdout, stderr = run_cli("run", "--method", "decoder", "--dataset", "digits_lt", "--out", tmp_path,
                                       "--no-progress", *options)
        assert code == 0, stderr
        record = json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())
        return record["artifacts"]["stage1_checkpoint"], "reusing the finished stage 1" in stderr

    fp32_stage, reused = run()
    assert not reused
    monkeypatch.setattr(RunContext, "precision", property(lambda self: "bf16"))
    bf16_stage, reused = run()
    assert not reused and bf16_stage != fp32_stage
    monkeypatch.undo()
    assert run() == (fp32_stage, True)
