"""Samplers over a split's labels, registered in SAMPLERS.

Each epoch's order depends only on (seed, epoch), so a resumed run draws exactly what the
uninterrupted run would have drawn.
"""
import numpy as np
from torch.utils.data import Sampler

from ltbench.registry import SAMPLERS


class _EpochSampler(Sampler):
    def __init__(self, labels, num_samples: int = None, seed: int = 0):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_samples = int(num_samples or len(self.labels))
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _rng(self):
        return np.random.default_rng([self.seed, self.epoch])

    def __len__(self):
        return self.num_samples


@SAMPLERS.register_module(name="instance")
class InstanceSampler(_EpochSampler):
    """Instance-balanced: every image once per epoch, shuffled (the natural long-tailed distribution)."""

    def __iter__(self):
        rng = self._rng()
        order = np.concatenate([rng.permutation(len(self.labels))
                                for _ in range(-(-self.num_samples // len(self.labels)))])
        return iter(order[: self.num_samples].tolist())


class _ClassPowerSampler(_EpochSampler):
    """Draw a class with probability proportional to n_c ** power, then an image of it uniformly.

    Draws are with replacement, so the class distribution is exactly the target one (a sampler
    that draws images without replacement drifts back towards instance-balanced).
    """

    power = 0.0

    def __init__(self, labels, num_samples: int = None, seed: int = 0):
        super().__init__(labels, num_samples, seed)
        self.classes, counts = np.unique(self.labels, return_counts=True)
        weights = counts.astype(np.float64) ** self.power
        self.class_probs = weights / weights.sum()
        order = np.argsort(self.labels, kind="stable")
        self.members = np.split(order, np.cumsum(counts)[:-1])
        self.counts = counts

    def __iter__(self):
        rng = self._rng()
        drawn = rng.choice(len(self.classes), size=self.num_samples, p=self.class_probs)
        offsets = (rng.random(self.num_samples) * self.counts[drawn]).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        flat = np.concatenate(self.members)
        return iter(flat[starts[drawn] + offsets].tolist())


@SAMPLERS.register_module(name="class_balanced")
class ClassBalancedSampler(_ClassPowerSampler):
    """Class-balanced: every class equally likely, images drawn with replacement."""

    power = 0.0


@SAMPLERS.register_module(name="sqrt")
class SquareRootSampler(_ClassPowerSampler):
    """Square-root: class probability proportional to sqrt(n_c)."""

    power = 0.5


def build_sampler(name: str, labels, num_samples: int = None, seed: int = 0) -> Sampler:
    from ltbench import registry

    sampler_cls = registry.get(SAMPLERS, name)
    return sampler_cls(labels, num_samples=num_samples, seed=seed)

