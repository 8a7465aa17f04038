"""Augmentation of in-memory splits under torchrun: each process draws its images' augmentation
from their global batch positions, so the processes together augment as one process does."""
import numpy as np
import torch

from ltbench.data import loading
from ltbench.data.augment import AugmentSpec
from ltbench.data.transforms import TransformSpec

SPEC = AugmentSpec.from_eval(TransformSpec(size=12, mean=(0.5,) * 3, std=(0.5,) * 3),
                             {"crop_scale": [0.3, 1.0], "crop_ratio": [0.75, 4 / 3], "flip": True, "color_jitter": [0.4, 0.4, 0.4, 0.1]})
IMAGES = np.random.default_rng(0).integers(0, 255, size=(6, 16, 16, 3), dtype=np.uint8)


def test_a_share_of_a_batch_gets_the_draws_of_its_positions():
    whole = SPEC.apply_batch(IMAGES, torch.Generator().manual_seed(3))
    for world in (2, 3):
        for rank in range(world):
            positions = np.arange(rank, 6, world)
            part = SPEC.apply_batch(IMAGES[positions], torch.Generator().manual_seed(3), positions=positions, total=6)
            assert torch.allclose(part, whole[positions], atol=1e-6)


def test_array_batches_of_two_processes_augment_like_one(monkeypatch):
    class Split:
        images = IMAGES

    single = loading._AugmentedArrayBatches(Split, SPEC, 6, None, False, seed=1, epoch=2)._transform(IMAGES, 0)
    for rank in range(2):
        monkeypatch.setattr(loading, "get_world_size", lambda: 2)
        monkeypatch.setattr(loading, "get_rank", lambda rank=rank: rank)
        batches = loading._AugmentedArrayBatches(Split, SPEC, 3, None, False, seed=1, epoch=2)
        assert torch.allclose(batches._transform(IMAGES[rank::2], 0), single[rank::2], atol=1e-6)
