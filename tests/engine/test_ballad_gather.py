"""BALLAD phase A under torchrun: with 2 CPU processes (gloo) the contrastive loss and the
gradients DDP leaves are those of one process on the concatenated batch; template draws follow
global batch positions."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ltbench.engine.finetune import PromptBatches

BATCH, TEMPLATES, CLASSES = 8, 3, 4
LABELS = torch.tensor([0, 1, 1, 2, 3, 0, 0, 1])  # repeated classes: several positives per anchor


def _tuner_and_prompts():
    from ltbench.models.clip_finetune import ClipFineTuner
    from ltbench.models.factory import create_backbone
    from ltbench.models.trainable import set_trainable

    torch.manual_seed(0)
    clip = create_backbone("tiny", "cpu")
    prompts = [template.format(name) for name in ("zero", "one", "great grey owl", "a three")
               for template in ("a photo of a {}.", "{}", "a blurry photo of the {}, a type of thing.")]
    set_trainable(clip.model, "all")
    return ClipFineTuner(clip.model, clip.tokenize(prompts), logit_scale=None, global_pairs=True).train()


def _images():
    return torch.randn(BATCH, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _step(tuner, module, images, labels, rank, world):
    """One phase-A step through PromptBatches, as fine_tune_clip builds it: (loss, gradients)."""
    from ltbench.engine.finetune import global_batch_contrastive

    batches = PromptBatches(lambda epoch: iter([(images, labels)]), CLASSES, TEMPLATES, "contrastive", seed=3,
                            prompt_lengths=tuner.prompt_lengths, rank=rank, world_size=world)
    inputs, targets = next(iter(batches(0)))
    tuner.model.zero_grad(set_to_none=True)
    loss = global_batch_contrastive(module(inputs).float(), targets)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in tuner.model.named_parameters() if p.grad is not None}


def _worker(rank, world, port, out):
    from ltbench.core import distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    tuner = _tuner_and_prompts()
    module = distributed.wrap_for_training(tuner, torch.device("cpu"))
    # This process's images are the global positions rank, rank + world, ... (ShardedSampler).
    loss, grads = _step(tuner, module, _images()[rank::world], LABELS[rank::world], rank, world)
    torch.save({"loss": loss, "grads": grads}, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow  # two spawned processes: outside the inner loop
def test_two_processes_optimise_the_global_batch_loss(tmp_path, spawn_two):
    spawn_two(_worker, str(tmp_path))
    tuner = _tuner_and_prompts()
    loss, grads = _step(tuner, tuner, _images(), LABELS, rank=0, world=1)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert abs(result["loss"].item() - loss.item()) < 1e-5
        assert set(result["grads"]) == set(grads)
        for name, expected in grads.items():  # after DDP's average over the two processes
            assert (result["grads"][name] - expected).abs().max() < 1e-5, name


def test_template_draws_follow_global_batch_positions():
    labels = torch.arange(12) % CLASSES

    def texts(rank, world):
        shard = labels[rank::world]
        stream = PromptBatches(lambda epoch: iter([(torch.zeros(len(shard), 1), shard)]), CLASSES, TEMPLATES,
                               "contrastive", seed=5, rank=rank, world_size=world)
        (_, rows, text_index), _ = next(iter(stream(2)))
        return rows[text_index].numpy()

    single = texts(0, 1)
    for world in (2, 3):
        together = np.empty_like(single)
        for rank in range(world):
            together[rank::world] = texts(rank, world)
        assert np.array_equal(together, single)


# ---- end to end: `ltbench run --method ballad` on digits_lt with 2 processes ------------------

# SGD: AdamW turns the float noise of gradients that are zero in exact arithmetic (attention key
# biases) into full-size steps, so its weights after two runs differ beyond rounding.
SHORT = ("phase_a.epochs=3", "phase_b.epochs=2", "phase_a.optimizer=sgd", "phase_a.lr=1.0")


def _run_args(tmp_path, name):
    return ["run", "--method", "ballad", "--dataset", "digits_lt", "--backbone", "tiny", "--no-progress",
            "--out", str(Path(tmp_path) / name), "--cfg-options", *SHORT,
            f"runtime.cache_dir={Path(tmp_path) / f'cache_{name}'}"]


def _run_worker(rank, world, port, out):
    from contextlib import redirect_stderr, redirect_stdout

    from ltbench.app.cli import main
    from ltbench.core import distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    with open(Path(out) / f"stdout{rank}", "w") as stdout, open(Path(out) / f"stderr{rank}", "w") as stderr, \
            redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(_run_args(out, "ddp"))
    torch.save({"code": code}, Path(out) / f"run{rank}.pt")


@pytest.mark.slow  # two spawned processes: outside the inner loop
def test_a_two_process_ballad_run_gives_the_single_process_metrics(run_cli, tmp_path, spawn_two):
    import json

    spawn_two(_run_worker, str(tmp_path))
    assert all(torch.load(tmp_path / f"run{rank}.pt")["code"] == 0 for rank in range(2))
    code, _, stderr = run_cli(*_run_args(tmp_path, "single"))
    assert code == 0, stderr
    (single,), (ddp,) = [[json.loads(path.read_text()) for path in (tmp_path / name / "runs").rglob("*.json")]
                         for name in ("single", "ddp")]
    assert ddp["device"] == "cpu, 2 processes (DDP)" and ddp["config_hash"] == single["config_hash"]
    for record in ("metrics", "after_phase_a"):
        got = ddp["metrics"] if record == "metrics" else ddp["extra_metrics"][record]
        expected = single["metrics"] if record == "metrics" else single["extra_metrics"][record]
        assert got["overall"] == pytest.approx(expected["overall"], abs=1e-6), record
        assert np.allclose(got["per_class_accuracy"], expected["per_class_accuracy"]), record
    # Phase A's weights: those of one process up to rounding.
    single_weights, ddp_weights = [torch.load(record["artifacts"]["phase_a_checkpoint"], weights_only=False)["state_dict"]
                                   for record in (single, ddp)]
    for name, expected in single_weights.items():
        assert (ddp_weights[name] - expected).abs().max() < 1e-4, name
