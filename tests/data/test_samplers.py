import numpy as np
import pytest

from ltbench.core.errors import UserError
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


SKEWED = np.repeat(np.arange(5), [500, 100, 20, 5, 1])


def _class_aware(seed=0, epoch=0, **options):
    sampler = build_sampler("class_aware", SKEWED, seed=seed, **options)
    sampler.set_epoch(epoch)
    return np.fromiter(iter(sampler), dtype=np.int64)


def test_class_aware_sampler_balances_classes_in_runs():
    drawn = _class_aware(samples_per_class=4)
    counts = np.bincount(SKEWED[drawn], minlength=5)
    assert len(drawn) == len(SKEWED) and counts.max() - counts.min() <= 4
    # Visits come in runs of samples_per_class images of one class, and every class is visited
    # once before any class is visited again.
    visits = SKEWED[_class_aware(samples_per_class=4, num_samples=600)].reshape(-1, 4)
    assert (visits == visits[:, :1]).all()
    rounds = visits[:, 0].reshape(-1, 5)
    assert (np.sort(rounds, axis=1) == np.arange(5)).all()
    assert len({tuple(row) for row in rounds}) > 1  # the class order is reshuffled every round


def test_class_aware_sampler_cycles_through_each_class_without_repeats():
    drawn = _class_aware(samples_per_class=3)
    for label, size in enumerate([500, 100, 20, 5, 1]):
        images = drawn[SKEWED[drawn] == label]
        for start in range(0, len(images), size):
            cycle = images[start: start + size]
            assert len(set(cycle.tolist())) == len(cycle)  # no repeat before all of the class was drawn
        full = images[: len(images) // size * size].reshape(-1, size)
        assert all(sorted(row) == sorted(np.flatnonzero(SKEWED == label)) for row in full)
    assert len(drawn) == len(SKEWED)  # the last visit is cut short: 626 is not a multiple of 3


def test_class_aware_sampler_order_depends_on_seed_and_epoch():
    assert np.array_equal(_class_aware(seed=5, epoch=1), _class_aware(seed=5, epoch=1))
    assert not np.array_equal(_class_aware(seed=5, epoch=1), _class_aware(seed=5, epoch=2))
    assert len(_class_aware(num_samples=10)) == 10


def test_class_aware_sampler_draws_every_class_on_inaturalist_sized_labels():
    # Its speed: benchmarks/perf/quick_commands.py --only sampler (under 1 s was the budget).
    labels = np.concatenate([np.arange(8142), np.random.default_rng(0).zipf(1.3, 107_000) % 8142])
    sampler = build_sampler("class_aware", labels, seed=0)
    drawn = np.fromiter(iter(sampler), dtype=np.int64)
    assert len(drawn) == len(labels) and np.bincount(labels[drawn], minlength=8142).min() >= 4


def test_sampler_options_are_checked_against_the_sampler():
    with pytest.raises(UserError, match=r"'class_aware' has no option 'samples_per_clas' \(did you mean"):
        build_sampler("class_aware", SKEWED, samples_per_clas=2)
    with pytest.raises(UserError, match=r"sampler 'instance' has no option 'samples_per_class'"):
        build_sampler("instance", SKEWED, samples_per_class=2)
    with pytest.raises(UserError, match="samples_per_class must be a positive integer"):
        build_sampler("class_aware", SKEWED, samples_per_class=0)


def test_sampler_from_a_config_value():
    by_name = build_sampler({"type": "instance"}, SKEWED, seed=1)
    assert list(by_name) == list(build_sampler("instance", SKEWED, seed=1))
    spec = {"type": "class_aware", "samples_per_class": 2}
    sampler = build_sampler(spec, SKEWED, num_samples=40, seed=1)
    assert sampler.samples_per_class == 2 and len(sampler) == 40 and spec["type"] == "class_aware"
    with pytest.raises(UserError, match="'type' name"):
        build_sampler({"samples_per_class": 2}, SKEWED)
    with pytest.raises(UserError, match="has no option 'seed'"):
        build_sampler({"type": "class_aware", "seed": 3}, SKEWED)


def test_options_given_to_the_builder_add_to_a_mapping_or_a_name():
    from_mapping = build_sampler({"type": "class_aware"}, SKEWED, seed=1, samples_per_class=2)
    from_name = build_sampler("class_aware", SKEWED, seed=1, samples_per_class=2)
    assert from_mapping.samples_per_class == from_name.samples_per_class == 2
    assert list(from_mapping) == list(from_name)
