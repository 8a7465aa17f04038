"""Seeds for every random draw of a run, derived from (seed, stage, purpose).

A draw that takes the global RNG depends on everything that ran before it (a cold cache's
feature extraction, a DataLoader's base seed, a stage that was reused instead of trained), so
ltbench never relies on it: random initialisations run inside ``seeded(seed, *purpose)``, and
loaders, samplers and augmentations draw from generators of their own.
"""
import contextlib
import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def derive_seed(seed: int, *purpose) -> int:
    """A 63-bit seed from ``seed`` and a purpose (strings and integers, e.g. ("ballad", "adapter")):
    the same inputs always give the same seed, different purposes unrelated ones."""
    text = repr((int(seed),) + tuple(str(part) if not isinstance(part, int) else part for part in purpose))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def generator(seed: int, *purpose) -> torch.Generator:
    """A CPU torch.Generator seeded from (seed, *purpose)."""
    return torch.Generator().manual_seed(derive_seed(seed, *purpose))


def _current_cuda_device() -> list:
    """[this process's CUDA device] once CUDA is initialised, else [].

    Only the current device: a process computes on the one device it set
    (distributed.setup calls torch.cuda.set_device, under torchrun and for --device cuda:N).
    Touching the others (``with torch.cuda.device(d)`` for every visible GPU) would create a
    CUDA context on each, a few hundred MiB apiece: under torchrun with 8 GPUs, 8 contexts on
    every GPU, and a failure on GPUs in exclusive-process mode.
    """
    return [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []


@contextlib.contextmanager
def seeded(seed: int, *purpose):
    """Run the block with torch's global RNG (CPU and the current CUDA device) seeded from
    (seed, *purpose), then put the RNG back as it was: what the block draws (a module's random
    initialisation, dropout) depends on the seed and the purpose only, and work after the block
    draws what it would have drawn without it."""
    with global_rng_seeded_with(derive_seed(seed, *purpose)):
        yield


@contextlib.contextmanager
def global_rng_seeded_with(value: int):
    """``seeded`` with the global RNG seeded with ``value`` itself (no derivation): for a draw
    that must equal what ``torch.manual_seed(value)`` followed by it gave (see
    models/factory.py's BACKBONE_INIT_SEED)."""
    devices = _current_cuda_device()
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        # Not torch.manual_seed: it would also queue a seed for CUDA devices that initialise
        # after the block, which fork_rng does not put back.
        _seed_generators(int(value), devices)
        yield


def _seed_generators(value: int, cuda_devices: list):
    torch.default_generator.manual_seed(value)
    if cuda_devices:
        torch.cuda.manual_seed(value)  # the current device's generator; no device switch


def reseed(seed: int, *purpose):
    """Seed torch's global RNG from (seed, *purpose) in place (inside a ``seeded`` block, which
    restores it afterwards)."""
    _seed_generators(derive_seed(seed, *purpose), _current_cuda_device())
