"""Distributed runs: sharded samplers and splits; on two CPU processes (gloo), DDP training with
resume, and `ltbench run` of linear_probe matching the single-process run."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ltbench.core import distributed
from ltbench.core.distributed import ShardedSampler, shard_batches, shard_rows
from ltbench.core.errors import UserError
from ltbench.core.registry import SAMPLERS
from ltbench.data.samplers import build_sampler
from ltbench.engine.hooks import Hook

LABELS = np.repeat(np.arange(5), [300, 120, 40, 10, 3])  # 473 images: shards need padding


def _global_order(name, epoch=2):
    sampler = build_sampler(name, LABELS, seed=4)
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(SAMPLERS.module_dict))
def test_every_sampler_shards_into_equal_disjoint_parts_of_one_order(name, world):
    order = _global_order(name)
    shards = []
    for rank in range(world):
        shard = ShardedSampler(build_sampler(name, LABELS, seed=4), rank=rank, world_size=world)
        shard.set_epoch(2)
        shards.append(list(shard))
    size = -(-len(order) // world)
    assert [len(shard) for shard in shards] == [size] * world  # the same number of steps everywhere
    # Interleaved, the shards give back the global order, padded by wrapping to its start:
    # each position of the padded order goes to exactly one process.
    padded = [shards[position % world][position // world] for position in range(size * world)]
    assert padded == order + order[: size * world - len(order)]
    assert len(ShardedSampler(build_sampler(name, LABELS), rank=0, world_size=world)) == size


def test_instance_shards_cover_every_image_once_when_the_split_divides():
    labels = LABELS[:472]  # 472 = 4 x 118
    shards = []
    for rank in range(4):
        shard = ShardedSampler(build_sampler("instance", labels, seed=1), rank=rank, world_size=4)
        shard.set_epoch(3)
        shards.append(set(shard))
    assert all(not a & b for i, a in enumerate(shards) for b in shards[i + 1:])
    assert set().union(*shards) == set(range(472))


def test_the_processes_step_batches_make_up_the_single_process_batch():
    order = _global_order("class_aware")
    batch_size, world = 12, 3
    local = []
    for rank in range(world):
        sampler, local_batch = shard_batches(build_sampler("class_aware", LABELS, seed=4), batch_size,
                                             rank=rank, world_size=world)
        sampler.set_epoch(2)
        indices = list(sampler)
        local.append([indices[i: i + local_batch] for i in range(0, len(indices), local_batch)])
        assert local_batch == 4
    steps = -(-len(order) // batch_size)
    assert all(len(batches) == steps for batches in local)
    for step in range(steps - 1):  # the last global batch is padded
        together = sorted(index for batches in local for index in batches[step])
        assert together == sorted(order[step * batch_size: (step + 1) * batch_size])
    assert shard_batches("whole sampler", 12, rank=0, world_size=1) == ("whole sampler", 12)
    with pytest.raises(UserError, match="batch size 10 does not split evenly over 4 processes"):
        shard_batches(build_sampler("instance", LABELS), 10, rank=0, world_size=4)


def test_evaluation_blocks_cover_the_split_in_order():
    blocks = [shard_rows(10, rank=rank, world_size=3) for rank in range(3)]
    assert blocks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]  # equal sizes: the last wraps around
    assert sum(blocks, [])[:10] == list(range(10))
    assert shard_rows(10) is None  # one process: every row, in order


def test_a_fixed_gpu_index_under_torchrun_is_a_user_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="each process uses cuda:LOCAL_RANK"):
        distributed.setup(torch.device("cuda", 1))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu") and not distributed.is_active()


# ---- two processes (gloo) -------------------------------------------------------------------
# One pair of processes does all the multi-process checks: starting them (and importing torch
# in each) is most of the cost. They get the environment torchrun gives its workers.

TRAIN = {"epochs": 4, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": False,
         "weight_decay": 1e-4, "schedule": "cosine", "warmup_epochs": 1, "grad_accum_steps": 2,
         "log_interval": 2}


def _train(work_dir, resume=False, interrupt_after_epoch=None):
    """A linear model trained by the shared Trainer on 96 points, global batch 16."""
    from ltbench.engine.batches import TensorBatches
    from ltbench.engine.cache import ArrayCache
    from ltbench.engine.context import RunContext

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    inputs = torch.randn(96, 8, generator=torch.Generator().manual_seed(0))
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    batches = TensorBatches(inputs, targets, build_sampler("instance", targets.numpy(), seed=0), 16)

    class Interrupt(Hook):
        def after_epoch(self, epoch):
            if epoch == interrupt_after_epoch:
                raise KeyboardInterrupt

    ctx = RunContext(device=torch.device("cpu"), seed=0, work_dir=Path(work_dir),
                     cache=ArrayCache(Path(work_dir) / "cache"), progress=False, resume=resume)
    history = ctx.trainer(TRAIN, name="unit").fit(model, batches, batches.steps_per_epoch,
                                                 torch.nn.functional.cross_entropy, hooks=[Interrupt()])
    return model, history


def _run_args(tmp_path, name):
    return ["run", "--method", "linear_probe", "--dataset", "digits_lt", "--backbone", "tiny", "--no-progress",
            "--out", str(Path(tmp_path) / name), "--cfg-options", "train.epochs=5",
            f"runtime.cache_dir={Path(tmp_path) / f'cache_{name}'}"]


def _worker(rank, world, port, tmp_path):
    from contextlib import redirect_stderr, redirect_stdout

    from ltbench.app.cli import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    tmp_path = Path(tmp_path)
    gathered = distributed.gather_rows(torch.tensor(shard_rows(11)) * 10, 11)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "trainer", interrupt_after_epoch=1)
    model, history = _train(tmp_path / "trainer", resume=True)
    from ltbench.app import runner

    metric_calls = []  # the metrics and per-sample softmax this process computes (rank 0's work only)
    for name in ("evaluate", "per_sample_summary"):
        original = getattr(runner, name)
        setattr(runner, name, lambda *args, _original=original, _name=name, **kwargs:
                metric_calls.append(_name) or _original(*args, **kwargs))
    with open(tmp_path / f"stdout{rank}", "w") as out, open(tmp_path / f"stderr{rank}", "w") as err, \
            redirect_stdout(out), redirect_stderr(err):
        code = main(_run_args(tmp_path, "ddp"))
    torch.save({"weights": [p.detach() for p in model.parameters()], "gathered": gathered, "history": history,
                "agree": distributed.all_true(rank == 0), "code": code, "metric_calls": metric_calls},
               tmp_path / f"rank{rank}.pt")


def _record(out):
    (path,) = sorted((out / "runs").rglob("*.json"))  # exactly one record
    return json.loads(path.read_text())


@pytest.mark.slow  # two spawned processes: outside the inner loop
def test_two_processes_train_evaluate_and_resume_like_one(run_cli, tmp_path, spawn_two):
    spawn_two(_worker, str(tmp_path))
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    # Trainer: DDP with gradient accumulation, interrupted after epoch 1 and resumed from epoch
    # 0's checkpoint in both processes, ends where one uninterrupted process ends.
    reference, reference_history = _train(tmp_path / "single_trainer")
    for result in results:
        assert result["code"] == 0 and result["agree"] is False
        assert torch.equal(result["gathered"], torch.arange(11) * 10)  # blocks back in split order
        assert [entry["epoch"] for entry in result["history"]] == [0, 1, 2, 3]
        for trained, expected in zip(result["weights"], reference.parameters()):
            assert torch.allclose(trained, expected, atol=1e-5)
        # The logged loss is the mean over the global batch, as in one process.
        assert result["history"][-1]["loss"] == pytest.approx(reference_history[-1]["loss"], rel=1e-4)
    checkpoint = torch.load(tmp_path / "trainer" / "unit_last.pt", weights_only=False)
    assert set(checkpoint["model"]) == {"weight", "bias"} and checkpoint["epoch"] == 3  # the plain module's

    # `ltbench run` as torchrun runs it: the metrics of one process, one record, rank 0 speaks.
    code, _, stderr = run_cli(*_run_args(tmp_path, "single"))
    assert code == 0, stderr
    single, ddp = _record(tmp_path / "single"), _record(tmp_path / "ddp")
    assert ddp["device"] == "cpu, 2 processes (DDP)" and ddp["config_hash"] == single["config_hash"]
    for key in ("overall", "many", "medium", "few", "mean_per_class", "top5", "macro_f1"):
        assert ddp["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-6), key
    assert np.allclose(ddp["metrics"]["per_class_accuracy"], single["metrics"]["per_class_accuracy"])
    assert ddp["extra_metrics"]["val"]["overall"] == pytest.approx(single["extra_metrics"]["val"]["overall"])
    assert (tmp_path / "stdout0").read_text().count("record: ") == 1
    # Metrics and the per-sample softmax (N x C) on rank 0 only (issue 22, finding 14).
    assert results[1]["metric_calls"] == [] and results[0]["metric_calls"].count("evaluate") >= 2
    assert (tmp_path / "stdout1").read_text() == "" == (tmp_path / "stderr1").read_text()
    # The cache holds the same entries, written once each, the features gathered in split order.
    entries = {path.name: np.load(path) for path in (tmp_path / "cache_single").rglob("*.npy")}
    written = {path.name: np.load(path) for path in (tmp_path / "cache_ddp").rglob("*.npy")}
    assert set(written) == set(entries) and len(entries) == 3  # train, val, test features
    assert all(np.allclose(written[name], entries[name], atol=1e-6) for name in entries)
    assert not list((tmp_path / "cache_ddp").rglob(".*"))  # no temp file left behind
