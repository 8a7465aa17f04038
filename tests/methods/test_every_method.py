"""Every registered method runs end to end through `ltbench run` on digits_lt with the
random-init tiny CLIP, and writes a record of its 10 classes.

A method runs with its own digits_lt defaults unless SPEED_UPS gives it options: those that
need an option to run at all (clip_ensemble's members) or whose defaults would take long here."""
import json
from pathlib import Path

import numpy as np
import pytest

from ltbench.core import registry

DECODER_SPEED_UP = ("stage1.iterations=30", "stage2.iterations=10")
SPEED_UPS = {
    "ballad": ("phase_a.epochs=4", "phase_b.epochs=2"),
    "clip_ensemble": ("members=[zeroshot,linear_probe]",),
    # The post-hoc methods adjust a linear probe computed in the run (their offline default source).
    "posthoc_la": ("source_options=[train.epochs=5]",),
    "posthoc_prior": ("source_options=[train.epochs=5]",),
    "posthoc_taunorm": ("source_options=[train.epochs=5]",),
    "clip_finetune": ("train.epochs=3",),
    "clip_finetune_bs": ("train.epochs=3",),
    "lift": ("train.epochs=2",),
    "lift_plus": ("train.epochs=2",),
    "tackle": ("teacher.ballad_options=[phase_a.epochs=4]", "train.epochs=3"),
}


def speed_ups(method):
    """The options of SPEED_UPS; the decoder family (decoder, decoder_ce, ...: Imbalance-VLM's
    decoders, configs based on decoder.yaml) all take the decoder's shorter schedule."""
    if method in SPEED_UPS:
        return SPEED_UPS[method]
    if method == "decoder" or method.startswith("decoder_"):
        return DECODER_SPEED_UP
    return ()


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One results folder for the module: a finished stage (BALLAD's phase A, which TACKLE's
    teacher also trains) is reused by the methods that share it."""
    return tmp_path_factory.mktemp("every-method")


@pytest.mark.parametrize("method", registry.names(registry.METHODS))
def test_method_runs_end_to_end_on_digits_lt(run_cli, out, method):
    options = speed_ups(method)
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   *(["--cfg-options", *options] if options else []))
    assert code == 0, stderr
    path = Path(stdout.strip().splitlines()[-1].removeprefix("record: "))
    record = json.loads(path.read_text())
    assert record["method"] == method and record["dataset"] == "digits_lt"
    # Its numbers are those of the predictions it publishes beside it (the per-sample file).
    with np.load(path.parent / record["per_sample"]["path"]) as saved:
        labels, top1 = saved["labels_test"], saved["top_k_test"][:, 0]
    per_class = [100 * np.mean(top1[labels == label] == label) for label in range(10)]
    assert record["metrics"]["per_class_accuracy"] == pytest.approx(per_class)
    assert record["metrics"]["overall"] == pytest.approx(100 * np.mean(top1 == labels))
    # What the run used, stage by stage (issue 22): on the CPU, fp32 (amp is CUDA-only), no device memory.
    stages = record["stages"]
    assert {"data", "fit", "predict"} <= set(stages) <= set(record["timings"])
    assert all(stage["precision"] == "fp32" and stage["peak_device_bytes"] is None and stage["peak_host_bytes"] > 0
               for stage in stages.values())
    assert record["devices"]["type"] == "cpu" and record["devices"]["threads"] >= 1
    assert record["numerics"]["deterministic"] is False
