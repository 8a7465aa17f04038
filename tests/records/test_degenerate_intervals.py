"""Intervals that every resample agrees on (issue 23): iNaturalist's val has 3 images a class, and a
class whose images are all right or all wrong does not vary under within-class resampling. The
interval must still contain its estimate, and the figures must draw it."""
import numpy as np
import pytest

from ltbench.metrics import grouped_accuracy, per_sample_summary
from ltbench.records import figure_data, plots, stats
from ltbench.records.per_sample import per_sample_file_for, save_per_sample
from ltbench.records.selection import select_rows


def _degenerate(num_classes=1000, per_class=3):
    """Every even class all right, every odd one all wrong: each resample is the same."""
    labels = np.repeat(np.arange(num_classes), per_class)
    correct = (labels % 2 == 0).astype(np.float64)
    groups = np.array(["many", "medium", "few"])[np.arange(num_classes) * 3 // num_classes]
    return labels, correct, groups


def test_an_interval_every_resample_agrees_on_contains_its_estimate():
    labels, correct, groups = _degenerate()
    values = stats.point_statistics(correct, labels, groups)
    replicates = stats.within_class_bootstrap(correct, labels, groups, 20, 0)
    assert all(np.ptp(replicates[name]) == 0 for name in stats.STATISTICS)  # degenerate indeed
    for name in stats.STATISTICS:
        low, high = stats.percentile_interval(replicates[name], estimate=values[name])
        assert low <= values[name] <= high, name
    # Without the estimate, the bare percentile interval misses it by a rounding step here (which is
    # what made error bars negative): the construction above is what keeps it inside.
    missed = [name for name in stats.STATISTICS
              if not stats.percentile_interval(replicates[name])[0] <= values[name]
              <= stats.percentile_interval(replicates[name])[1]]
    assert missed


def test_a_skewed_bootstrap_interval_is_widened_to_its_estimate():
    assert stats.percentile_interval(np.array([5.0, 6.0, 7.0]), estimate=4.0) == [4.0, pytest.approx(6.95)]
    assert stats.percentile_interval(np.array([5.0, 6.0, 7.0]), estimate=9.0) == [pytest.approx(5.05), 9.0]
    assert stats.percentile_interval(None, estimate=1.0) is None


def _row(tmp_path, fake_record, labels, logits, class_counts):
    path = tmp_path / "run__seed0.json"
    summary = per_sample_summary(logits, labels)
    num_classes = len(class_counts)
    correct = summary["top_k"][:, 0] == labels
    per_class = [100.0 * correct[labels == c].mean() if (labels == c).any() else None for c in range(num_classes)]
    record = fake_record(seed=0, dataset="toy", per_class=per_class, overall=100.0 * correct.mean(),
                         **grouped_accuracy(np.array(per_class, dtype=float), class_counts))
    record["class_counts"] = list(class_counts)
    record["per_sample"] = save_per_sample(per_sample_file_for(path), {"test": (summary, "fp")})
    [row] = select_rows([(path, record)], "toy")
    return row


def test_the_group_figure_draws_a_degenerate_interval(tmp_path, fake_record):
    labels, correct, _ = _degenerate()
    predicted = np.where(correct > 0, labels, (labels + 1) % 1000)
    logits = np.eye(1000, dtype=np.float32)[predicted] * 5
    counts = [150] * 333 + [50] * 333 + [5] * 334
    row = _row(tmp_path, fake_record, labels, logits, counts)
    # Before: ValueError: 'yerr' must not contain negative values.
    plots.figure_bytes(plots.draw("groups", [row], "toy", "standard", resamples=20), "svg")
    values = figure_data.group_accuracy(row, resamples=20)
    for name, entry in values.items():
        assert entry["ci"][0] <= entry["value"] <= entry["ci"][1], name


def test_error_bars_are_never_negative_and_missing_intervals_draw_none():
    error = plots.bar_errors([{"value": 10.0, "ci": [10.000000000000002, 11.0]},  # an old record's interval
                              {"value": None, "ci": None}, {"value": 5.0, "ci": None},
                              {"value": 5.0, "ci": [float("nan"), 6.0]}])
    assert error.tolist() == [[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]]


def test_empty_shot_groups_are_drawn_as_empty_bars(tmp_path, fake_record):
    """Every class has fewer than 20 training images: many and medium have no class, and their bars
    stay empty (height 0, no error bar, '0 classes' under them) instead of failing the figure."""
    labels = np.repeat(np.arange(4), 5)
    logits = np.random.default_rng(0).normal(size=(len(labels), 4)).astype(np.float32)
    row = _row(tmp_path, fake_record, labels, logits, [10, 8, 6, 4])
    values = figure_data.group_accuracy(row, resamples=20)
    assert values["many"] == {"value": None, "ci": None} and values["medium"] == {"value": None, "ci": None}
    figure = plots.draw("groups", [row], "toy", "standard", resamples=20)
    axes = figure.axes[0]
    heights = [patch.get_height() for patch in axes.patches]
    assert heights[:2] == [0.0, 0.0] and heights[2] > 0 and heights[3] > 0  # many, medium, few, overall
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    assert ticks[0] == "Many\n(0 classes)" and ticks[1] == "Medium\n(0 classes)" and ticks[2] == "Few\n(4 classes)"


def test_the_tables_overall_interval_contains_the_value_it_shows(tmp_path, fake_record):
    from ltbench.records.tables import add_overall_ci

    labels, correct, _ = _degenerate()
    predicted = np.where(correct > 0, labels, (labels + 1) % 1000)
    row = _row(tmp_path, fake_record, labels, np.eye(1000, dtype=np.float32)[predicted] * 5, [50] * 1000)
    [record] = row["records"]
    assert add_overall_ci([row], {id(record): row["paths"][0]}, resamples=20) == []
    low, high = row["overall"]["ci"]
    assert low <= row["overall"]["mean"] <= high
