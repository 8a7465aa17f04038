"""Mini-batches of in-memory arrays (cached features, memory-mapped tokens) in sampler order.

batch_size is the batch of one optimizer step; in a distributed run each process takes its
share of every batch (core/distributed.py), so steps_per_epoch is the same in every process
and in a single-process run.
"""
import math

import numpy as np
import torch

from ltbench.core.distributed import shard_batches


def _epoch_order(sampler, batch_size: int, epoch: int):
    """(this process's indices for `epoch`, its batch size)."""
    sampler.set_epoch(epoch)
    sampler, batch_size = shard_batches(sampler, batch_size)
    return np.fromiter(iter(sampler), dtype=np.int64), batch_size


class TensorBatches:
    """Callable epoch -> iterator of (inputs[idx], targets[idx]); one index gather per batch."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, sampler, batch_size: int):
        self.inputs, self.targets = inputs, targets
        self.sampler, self.batch_size = sampler, int(batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __call__(self, epoch: int):
        order, batch_size = _epoch_order(self.sampler, self.batch_size, epoch)
        order = torch.from_numpy(order).to(self.inputs.device)
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            yield self.inputs[index], self.targets[index]


class ArrayRowBatches:
    """Callable epoch -> iterator of (float32 rows of a numpy array, labels) in sampler order:
    cached tokens that may not fit in memory are read from their memory map a batch at a time."""

    def __init__(self, array: np.ndarray, labels: np.ndarray, sampler, batch_size: int):
        self.array, self.labels = array, labels
        self.sampler, self.batch_size = sampler, int(batch_size)

    def __call__(self, epoch: int):
        order, batch_size = _epoch_order(self.sampler, self.batch_size, epoch)
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            yield (torch.from_numpy(np.asarray(self.array[index], dtype=np.float32)),
                   torch.from_numpy(self.labels[index]))


class EpochProgress:
    """A batches callable that also knows the fraction of training done at its current epoch, for
    losses on a schedule (LDAM-DRW): pass ``progress.value`` to the loss."""

    def __init__(self, batches, epochs: int):
        self.batches, self.epochs, self.value = batches, max(1, int(epochs)), 0.0

    def __call__(self, epoch: int):
        self.value = epoch / self.epochs
        return self.batches(epoch)
