"""Seeding touches only this process's CUDA device (checked with a mocked torch.cuda: this
machine has no GPU)."""
import contextlib

import pytest
import torch

from ltbench.core import seeding


@pytest.fixture
def eight_gpus(monkeypatch):
    """torch.cuda as a process on GPU 3 of 8 sees it; returns the devices each call touched."""
    touched = []

    @contextlib.contextmanager
    def device(index):  # entering it makes `index` current: a CUDA context there
        touched.append(("device", index))
        yield

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: touched.append(("manual_seed", "current")))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: touched.append(("manual_seed_all", "all")))
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda index="cuda": touched.append(("get_rng_state", index)) or torch.zeros(8, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, index="cuda": touched.append(("set_rng_state", index)))
    return touched


def test_seeded_touches_only_the_current_gpu(eight_gpus):
    with seeding.seeded(0, "test"):
        seeding.reseed(0, "test", 1)
    assert eight_gpus, "the mock saw nothing: the CUDA generator was not seeded at all"
    devices = {index for _, index in eight_gpus}
    assert devices <= {3, "current"}, f"seeding touched other GPUs: {eight_gpus}"
    assert ("manual_seed", "current") in eight_gpus and ("set_rng_state", 3) in eight_gpus


def test_seeded_still_seeds_and_restores_the_cpu_generator():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeding.seeded(0, "a"):
        inside = torch.rand(3)
    with seeding.seeded(0, "a"):
        assert torch.equal(torch.rand(3), inside)
    assert torch.equal(torch.rand(3), expected)
