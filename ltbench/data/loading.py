"""Batches of model-ready images from any split."""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ltbench.data.base import ArraySplit, FileSplit, Split
from ltbench.data.transforms import TransformSpec
from ltbench.errors import UserError


class _ImageFileDataset(Dataset):
    def __init__(self, split: FileSplit, transform):
        self.split = split
        self.transform = transform

    def __len__(self):
        return len(self.split)

    def __getitem__(self, index):
        from PIL import Image

        path = self.split.image_path(index)
        try:
            with Image.open(path) as image:
                tensor = self.transform(image)
        except FileNotFoundError:
            raise UserError(f"image listed in {self.split.list_file} not found: {path}; "
                            "run `ltbench data check` to count missing images") from None
        return tensor, int(self.split.labels[index])


class _ArrayBatches:
    """Batches of an in-memory split, transformed a whole batch at a time."""

    def __init__(self, split: ArraySplit, transform: TransformSpec, batch_size, sampler, drop_last):
        self.split, self.transform = split, transform
        self.batch_size, self.sampler, self.drop_last = batch_size, sampler, drop_last

    def __len__(self):
        total = len(self.sampler) if self.sampler is not None else len(self.split)
        return total // self.batch_size if self.drop_last else -(-total // self.batch_size)

    def __iter__(self):
        order = np.fromiter(iter(self.sampler), dtype=np.int64) if self.sampler is not None \
            else np.arange(len(self.split))
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            images = self.transform.apply_batch(self.split.images[index])
            yield images, torch.from_numpy(self.split.labels[index])


def image_loader(split: Split, transform: TransformSpec, batch_size: int, sampler=None,
                 num_workers: int = 0, pin_memory: bool = False, drop_last: bool = False):
    """Iterable of (images [B, 3, S, S] float, labels [B]) in sampler order (split order if None)."""
    if isinstance(split, ArraySplit):
        return _ArrayBatches(split, transform, batch_size, sampler, drop_last)
    if isinstance(split, FileSplit):
        return DataLoader(_ImageFileDataset(split, transform.pil_transform()), batch_size=batch_size,
                          sampler=sampler, shuffle=False, num_workers=num_workers,
                          pin_memory=pin_memory, drop_last=drop_last)
    raise TypeError(f"no loader for split type {type(split).__name__}")
