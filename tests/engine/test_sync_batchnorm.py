"""Under torchrun on CUDA, BatchNorm layers that train normalise over the global batch
(SyncBatchNorm), so "the same metrics as one process" holds for them too (finding 7 of issue 22).
The conversion is checked with the process group mocked: this machine has no GPU."""
import pytest
import torch
from torch import nn

from ltbench.core import distributed
from ltbench.core.errors import UserError
from ltbench.engine.trainer import train_settings


def _model():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


@pytest.fixture
def two_gpus_under_torchrun(monkeypatch):
    monkeypatch.setattr(distributed, "is_active", lambda: True)
    monkeypatch.setattr(distributed, "get_world_size", lambda: 2)


def test_batchnorm_turns_sync_under_torchrun_on_cuda(two_gpus_under_torchrun):
    model = _model()
    norm = model[1]
    weight, running_mean = norm.weight, norm.running_mean
    synced = distributed.with_synced_batchnorm(model, torch.device("cuda", 1))
    assert synced is model and isinstance(model[1], nn.SyncBatchNorm)
    # The same parameters (the optimizer holds them) and running statistics, not copies.
    assert model[1].weight is weight and model[1].running_mean is running_mean


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_batchnorm_stays_in_one_process_and_on_the_cpu(device, monkeypatch):
    if device == "cpu":  # torchrun on CPUs: torch has no SyncBatchNorm kernel there
        monkeypatch.setattr(distributed, "is_active", lambda: True)
        monkeypatch.setattr(distributed, "get_world_size", lambda: 2)
    model = _model()
    distributed.with_synced_batchnorm(model, torch.device(device))
    assert type(model[1]) is nn.BatchNorm2d


def test_the_trainer_asks_for_it_unless_a_section_says_false(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(distributed, "wrap_for_training",
                        lambda model, device, sync_batchnorm=True: asked.append(sync_batchnorm) or model)
    from ltbench.engine.cache import ArrayCache
    from ltbench.engine.context import RunContext

    ctx = RunContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path, cache=ArrayCache(tmp_path), progress=False)
    section = {"epochs": 1, "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
               "schedule": "constant", "grad_accum_steps": 1, "log_interval": 10}
    batches = lambda epoch: iter([(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))])  # noqa: E731
    for options, expected in (({}, True), ({"sync_batchnorm": False}, False)):
        ctx.trainer({**section, **options}, name=f"unit{len(asked)}").fit(
            nn.Linear(3, 2), batches, 1, loss_fn=nn.functional.cross_entropy)
        assert asked[-1] is expected


def test_sync_batchnorm_must_be_true_or_false():
    section = {"epochs": 1, "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
               "schedule": "constant", "grad_accum_steps": 1, "log_interval": 10}
    with pytest.raises(UserError, match="train.sync_batchnorm='yes'"):
        train_settings({**section, "sync_batchnorm": "yes"}, "train")


def test_tackle_sets_it_in_its_recipe():
    from ltbench.config import RunRequest, resolve

    assert resolve(RunRequest(method="tackle", dataset="digits_lt"))["train"]["sync_batchnorm"] is True
