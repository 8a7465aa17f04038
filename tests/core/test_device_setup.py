"""distributed.setup makes the run's CUDA device current, in one process too (mocked torch.cuda)."""
import pytest
import torch

from ltbench.core import distributed


@pytest.fixture
def four_gpus(monkeypatch):
    calls = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(torch.device(device)))
    return calls


def test_single_process_run_on_cuda_n_sets_that_device(four_gpus):
    assert distributed.setup(torch.device("cuda", 2)) == torch.device("cuda", 2)
    assert four_gpus == [torch.device("cuda", 2)]


def test_plain_cuda_names_the_current_device(four_gpus):
    assert distributed.setup(torch.device("cuda")) == torch.device("cuda", 0)
    assert four_gpus == [torch.device("cuda", 0)]


def test_cpu_run_touches_no_gpu(four_gpus):
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert four_gpus == []
