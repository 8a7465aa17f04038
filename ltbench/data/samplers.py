"""Samplers over a split's labels, registered in SAMPLERS.

Each epoch's order depends only on (seed, epoch), so a resumed run draws exactly what the
uninterrupted run would have drawn.
"""

import numpy as np
from torch.utils.data import Sampler

from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.core.registry import SAMPLERS


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


@SAMPLERS.register_module(name="class_aware")
class ClassAwareSampler(_EpochSampler):
    """Class-aware (Decoupling / BALLAD): classes in shuffled rounds, samples_per_class images a visit.

    Within a class, images are drawn in shuffled passes: each image once before any image of that
    class repeats. Every class is visited once per round, so over an epoch the per-class counts
    differ by at most samples_per_class, however imbalanced the labels.
    """

    def __init__(self, labels, num_samples: int = None, seed: int = 0, samples_per_class: int = 4):
        super().__init__(labels, num_samples, seed)
        if isinstance(samples_per_class, bool) or not isinstance(samples_per_class, int) \
                or samples_per_class < 1:
            raise UserError(f"sampler 'class_aware': samples_per_class must be a positive integer, "
                            f"got {samples_per_class!r}")
        self.samples_per_class = samples_per_class
        self.classes, self.counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(self.labels, kind="stable")
        self.members = np.split(order, np.cumsum(self.counts)[:-1])

    def __iter__(self):
        rng = self._rng()
        num_classes, per_visit = len(self.classes), self.samples_per_class
        visits = -(-self.num_samples // per_visit)
        rounds = -(-visits // num_classes)
        # One shuffled pass over the classes per round; argsort of uniform keys shuffles every row at once.
        visited = rng.random((rounds, num_classes)).argsort(axis=1).ravel()[:visits]
        visit_counts = np.bincount(visited, minlength=num_classes)
        stream = self._class_streams(rng, visit_counts * per_visit)
        stream_starts = np.concatenate([[0], np.cumsum(visit_counts * per_visit)[:-1]])
        # The k-th visit of a class takes the k-th block of samples_per_class from that class's stream.
        by_class = np.argsort(visited, kind="stable")
        visit_starts = np.concatenate([[0], np.cumsum(visit_counts)[:-1]])
        occurrence = np.empty(visits, dtype=np.int64)
        occurrence[by_class] = np.arange(visits) - visit_starts[visited[by_class]]
        positions = stream_starts[visited, None] + occurrence[:, None] * per_visit + np.arange(per_visit)
        return iter(stream[positions.ravel()[: self.num_samples]].tolist())

    def _class_streams(self, rng, draws):
        """The first draws[c] images of each class's cycle (shuffled passes over it), concatenated."""
        streams = []
        for members, count, needed in zip(self.members, self.counts, draws):
            passes = -(-needed // count)
            shuffled = members[rng.random((passes, count)).argsort(axis=1)]
            streams.append(shuffled.ravel()[:needed])
        return np.concatenate(streams)


# What the builder passes itself: never a config option.
SAMPLER_ARGUMENTS = ("labels", "num_samples", "seed")


def build_sampler(spec, labels, num_samples: int = None, seed: int = 0, **options) -> Sampler:
    """The sampler a config value names: a name ('instance') or a mapping {type: name, **options}
    (``train.sampler``), its options checked against the sampler's; ``options`` given here add to
    them (e.g. samples_per_class). labels: the split's; num_samples: draws per epoch (default:
    the split's size); seed: the run's (each epoch's order depends only on it and the epoch)."""
    if options:
        spec = {**({"type": spec} if isinstance(spec, str) else spec), **options}
    _, sampler_cls, options = registry.resolve_spec(SAMPLERS, spec, reserved=SAMPLER_ARGUMENTS)
    return sampler_cls(labels, num_samples=num_samples, seed=seed, **options)
