import numpy as np
import pytest

from ltbench.data.samplers import build_sampler

LABELS = np.repeat(np.arange(4), [400, 100, 25, 4])


def _class_frequencies(sampler):
    drawn = LABELS[np.fromiter(iter(sampler), dtype=np.int64)]
    return np.bincount(drawn, minlength=4) / len(drawn)


def test_instance_sampler_is_a_permutation_per_epoch():
    sampler = build_sampler("instance", LABELS, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(len(LABELS)))
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_class_balanced_sampler_is_truly_balanced():
    sampler = build_sampler("class_balanced", LABELS, num_samples=40000, seed=0)
    assert np.allclose(_class_frequencies(sampler), 0.25, atol=0.01)


def test_square_root_sampler_follows_sqrt_counts():
    sampler = build_sampler("sqrt", LABELS, num_samples=40000, seed=0)
    expected = np.sqrt([400, 100, 25, 4]) / np.sqrt([400, 100, 25, 4]).sum()
    assert np.allclose(_class_frequencies(sampler), expected, atol=0.01)


@pytest.mark.parametrize("name", ["instance", "class_balanced", "sqrt"])
def test_order_depends_only_on_seed_and_epoch(name):
    a, b = build_sampler(name, LABELS, seed=7), build_sampler(name, LABELS, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and len(a) == len(LABELS)
    drawn = np.fromiter(iter(a), dtype=np.int64)
    assert drawn.min() >= 0 and drawn.max() < len(LABELS)
