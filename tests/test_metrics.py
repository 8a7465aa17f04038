import numpy as np
import pytest

from ltbench.metrics import evaluate, group_sizes, macro_f1, shot_groups


def test_shot_group_boundaries_under_both_rules():
    counts = [101, 100, 20, 19, 5]
    assert list(shot_groups(counts, "standard")) == ["many", "medium", "medium", "few", "few"]
    assert list(shot_groups(counts, "oltr")) == ["many", "many", "few", "few", "few"]


def test_evaluate_hand_computed():
    # 3 classes, train counts: class 0 many, class 1 medium, class 2 few.
    class_counts = [200, 50, 5]
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 1, 0, 0, 0])
    logits = np.eye(3)[predicted] * 5.0
    metrics = evaluate(logits, labels, class_counts)
    assert metrics["overall"] == pytest.approx(100 * 3 / 6)
    assert (metrics["many"], metrics["medium"], metrics["few"]) == (100.0, 50.0, 0.0)
    assert metrics["mean_per_class"] == pytest.approx(50.0)
    assert metrics["per_class_accuracy"] == [100.0, 50.0, 0.0]
    assert metrics["top5"] == 100.0  # only 3 classes: the true class is always among the top 3
    # F1: class 0 p=2/5 r=1 -> 4/7; class 1 p=1 r=1/2 -> 2/3; class 2 -> 0.
    assert metrics["macro_f1"] == pytest.approx(100 * (4 / 7 + 2 / 3 + 0) / 3)
    assert metrics["group_sizes"] == {"many": 1, "medium": 1, "few": 1}
    assert metrics["shot_rule"] == "standard"


def test_group_is_mean_of_per_class_not_micro():
    class_counts = [500, 300]  # both many
    labels = np.array([0] * 9 + [1])
    predicted = np.array([0] * 9 + [0])
    metrics = evaluate(np.eye(2)[predicted], labels, class_counts)
    assert metrics["many"] == pytest.approx(50.0)      # (100 + 0) / 2, not 90
    assert metrics["overall"] == pytest.approx(90.0)
    assert metrics["medium"] is None and metrics["few"] is None


def test_top5_and_missing_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10))
    labels = np.argsort(-logits, axis=1)[:, 4]  # the true class is always 5th best
    metrics = evaluate(logits, labels, [10] * 10)
    assert metrics["top5"] == 100.0 and metrics["overall"] == 0.0
    present = set(labels.tolist())
    assert all((value is None) == (c not in present) for c, value in enumerate(metrics["per_class_accuracy"]))


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    labels, predicted = rng.integers(0, 7, 300), rng.integers(0, 7, 300)
    assert macro_f1(predicted, labels, 7) == pytest.approx(100 * f1_score(labels, predicted, average="macro"))


def test_group_sizes_counts_classes():
    assert group_sizes([1000, 150, 101, 100, 20, 19, 1]) == {"many": 3, "medium": 2, "few": 2}
