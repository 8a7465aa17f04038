"""The numbers behind the figures, on synthetic records with per-sample files (no model)."""
import numpy as np
import pytest

from ltbench.metrics import agnostic_accuracy, calibration_scores, grouped_accuracy, per_sample_summary
from ltbench.records import figure_data, stats
from ltbench.records.per_sample import per_sample_file_for, save_per_sample
from ltbench.records.selection import row_labels, select_rows

COUNTS = [150, 100, 50, 20, 5]
GROUPS = np.array(["many", "medium", "medium", "medium", "few"])


def _write_run(folder, fake_record, seed, logits, labels, method="linear_probe", **fields):
    """A record of 5 classes with a real per-sample file, built from [N, 5] logits."""
    path = folder / f"{method}__seed{seed}.json"
    summary = per_sample_summary(logits, labels)
    correct = summary["top_k"][:, 0] == labels
    per_class = [100.0 * correct[labels == c].mean() if (labels == c).any() else None for c in range(5)]
    record = fake_record(method=method, seed=seed, dataset="toy", per_class=per_class,
                         overall=100.0 * correct.mean(), **grouped_accuracy(np.array(per_class), COUNTS), **fields)
    record["per_sample"] = save_per_sample(per_sample_file_for(path), {"test": (summary, "fp")})
    record["metrics"]["calibration"] = calibration_scores(summary)
    return path, record


@pytest.fixture
def toy_runs(tmp_path, fake_record):
    """Two seeds of linear_probe and one of zeroshot_clip on 60 images, 12 per class."""
    labels = np.repeat(np.arange(5), 12).astype(np.int64)
    loaded = []
    for seed, method in ((0, "linear_probe"), (1, "linear_probe"), (0, "zeroshot_clip")):
        rng = np.random.default_rng(seed + 10 * (method == "zeroshot_clip"))
        logits = rng.normal(size=(len(labels), 5)) + 2.0 * np.eye(5)[labels] * (method == "linear_probe")
        loaded.append(_write_run(tmp_path, fake_record, seed, logits, labels, method=method))
    return loaded, labels


def test_moving_average_is_centred_shrinks_at_the_ends_and_skips_nan():
    values = np.array([0.0, 10.0, np.nan, 30.0, 40.0])
    assert figure_data.moving_average(values, 1)[[0, 1, 3]].tolist() == [0.0, 10.0, 30.0]
    assert np.isnan(figure_data.moving_average(values, 1)[2])
    assert figure_data.moving_average(values, 3).tolist() == [5.0, 5.0, 20.0, 35.0, 35.0]
    assert figure_data.default_window(10) == 3 and figure_data.default_window(1000) == 50
    assert figure_data.default_window(2) == 2


def test_shot_boundaries_sit_between_the_groups_of_each_rule():
    assert figure_data.shot_boundaries("standard") == {"many": 100.5, "few": 19.5}
    assert figure_data.shot_boundaries("oltr") == {"many": 99.5, "few": 20.5}


def test_per_class_sorts_by_training_images_and_averages_seeds(tmp_path, fake_record):
    records = [fake_record(seed=0, per_class=[10.0, 20.0, None, 40.0, 50.0]),
               fake_record(seed=1, per_class=[30.0, 40.0, None, 60.0, 70.0])]
    records[0]["class_counts"] = records[1]["class_counts"] = [5, 150, 20, 100, 20]
    [row] = select_rows([(tmp_path / f"{r['seed']}.json", r) for r in records], "places_lt")
    data = figure_data.per_class(row, window=1)
    assert data["classes"].tolist() == [1, 3, 2, 4, 0]  # most images first, ties by class index
    assert data["counts"].tolist() == [150, 100, 20, 20, 5]
    assert data["accuracy"][[0, 1, 3, 4]].tolist() == [30.0, 50.0, 60.0, 20.0] and np.isnan(data["accuracy"][2])


def test_group_accuracy_is_the_leaderboard_value_with_the_compare_interval(toy_runs):
    loaded, labels = toy_runs
    rows = select_rows(loaded, "toy")
    assert [row["method"] for row in rows] == ["linear_probe", "zeroshot_clip"]
    assert row_labels(rows) == ["linear_probe (2 seeds)", "zeroshot_clip"]
    two_seeds = rows[0]
    values = figure_data.group_accuracy(two_seeds, resamples=500, seed=3)
    for name in ("many", "medium", "few", "overall"):
        assert values[name]["value"] == pytest.approx(two_seeds[name]["mean"])
        low, high = values[name]["ci"]
        assert low <= values[name]["value"] <= high
    # The interval is stats' within-class bootstrap of the seeds' mean correctness.
    correct = np.mean([np.load(path.with_suffix(".preds.npz"))["top_k_test"][:, 0] == labels
                       for path, _ in loaded[:2]], axis=0)
    replicates = stats.within_class_bootstrap(correct, labels, GROUPS, 500, 3)
    assert values["overall"]["ci"] == stats.percentile_interval(replicates["overall"])
    assert figure_data.group_accuracy(two_seeds, resamples=500, seed=3) == values  # seeded


def test_reliability_bins_pool_the_seeds_and_give_the_records_ece(toy_runs):
    loaded, _ = toy_runs
    one_seed = select_rows(loaded, "toy", ["zeroshot_clip"])[0]
    data = figure_data.reliability(one_seed, bins=15)
    assert data["count"].sum() == 60 and len(data["edges"]) == 16
    assert data["ece"] == pytest.approx(one_seed["records"][0]["metrics"]["calibration"]["ece"])
    filled = data["count"] > 0
    assert np.all((data["confidence"][filled] > data["edges"][:-1][filled])
                  & (data["confidence"][filled] <= data["edges"][1:][filled]))
    two_seeds = select_rows(loaded, "toy", ["linear_probe"])[0]
    assert figure_data.reliability(two_seeds)["count"].sum() == 120


def test_runs_without_per_sample_files_keep_their_values_without_intervals(tmp_path, fake_record):
    record = fake_record(per_class=[50.0, 40.0, 30.0, 20.0, 10.0])
    [row] = select_rows([(tmp_path / "old.json", record)], "places_lt")
    assert figure_data.reliability(row) is None
    assert figure_data.group_accuracy(row)["overall"] == {"value": 50.0, "ci": None}
    # Test-agnostic accuracy: computed from the per-class accuracy where the record predates it.
    data = figure_data.accuracy_by_test_distribution(row)
    expected = agnostic_accuracy(record["metrics"]["per_class_accuracy"], record["class_counts"])
    assert data["mean"].tolist() == pytest.approx([expected[name] for name in data["names"]])
    assert data["names"][0] == "forward-50" and data["names"][-1] == "backward-50" and np.isnan(data["std"]).all()


def test_the_bootstrap_of_a_row_runs_once_for_the_leaderboard_and_the_figure(toy_runs, monkeypatch):
    loaded, _ = toy_runs
    row = select_rows(loaded, "toy", ["zeroshot_clip"])[0]
    calls = []
    original = stats.within_class_bootstrap
    monkeypatch.setattr(stats, "within_class_bootstrap", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    first = figure_data.group_accuracy(row, resamples=321, seed=5)
    assert figure_data.group_accuracy(row, resamples=321, seed=5) == first and len(calls) == 1
    figure_data.group_accuracy(row, resamples=321, seed=6)  # other settings: bootstrapped again
    assert len(calls) == 2
