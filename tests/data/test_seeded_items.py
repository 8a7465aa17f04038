"""Augmented file items draw from their own seed on the CPU generator only (issue 23: torch.manual_seed
per image queued a seed, with a formatted stack trace, for each lazily initialised accelerator
type: 9 ms an image, an hour of loader time for one iNaturalist epoch)."""
import traceback

import torch

from ltbench.data import build_dataset
from ltbench.data.augment import AugmentSpec
from ltbench.data.loading import _ImageFileDataset, _SeededImageDataset

SPEC = AugmentSpec(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_scale=(0.08, 1.0))


def test_an_item_is_its_seeds_augmentation_and_formats_no_stack(folder_dataset, tmp_path, monkeypatch):
    split = build_dataset(folder_dataset(tmp_path, per_class=2)).split("train")
    seeded, plain = _SeededImageDataset(split, SPEC), _ImageFileDataset(split, SPEC.pil_transform())
    expected = []
    for index, seed in ((0, 11), (3, 12), (0, 13)):
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            expected.append(plain[index][0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)  # what the items were drawn with before: the same CPU draws
        assert torch.equal(plain[0][0], expected[0])
    stacks = []
    monkeypatch.setattr(traceback, "format_stack", lambda *args, **kwargs: stacks.append(1) or [])
    state = torch.get_rng_state()
    items = [seeded[(index, seed, 0)][0] for index, seed in ((0, 11), (3, 12), (0, 13))]
    assert stacks == []  # before: three formatted stacks an image (CUDA, XPU, MTIA seeds queued)
    assert all(torch.equal(item, want) for item, want in zip(items, expected))
    assert not torch.equal(items[0], items[2])  # another seed, another crop
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator left as it was
