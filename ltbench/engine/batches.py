"""Mini-batches of in-memory tensors (cached features) in sampler order."""
import math

import numpy as np
import torch


class TensorBatches:
    """Callable epoch -> iterator of (inputs[idx], targets[idx]); one index gather per batch."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, sampler, batch_size: int):
        self.inputs, self.targets = inputs, targets
        self.sampler, self.batch_size = sampler, int(batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __call__(self, epoch: int):
        self.sampler.set_epoch(epoch)
        order = torch.from_numpy(np.fromiter(iter(self.sampler), dtype=np.int64)).to(self.inputs.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            yield self.inputs[index], self.targets[index]


class EpochProgress:
    """A batches callable that also knows the fraction of training done at its current epoch, for
    losses on a schedule (LDAM-DRW): pass ``progress.value`` to the loss."""

    def __init__(self, batches, epochs: int):
        self.batches, self.epochs, self.value = batches, max(1, int(epochs)), 0.0

    def __call__(self, epoch: int):
        self.value = epoch / self.epochs
        return self.batches(epoch)
