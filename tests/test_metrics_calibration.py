"""Per-sample summaries, calibration and test-agnostic accuracy against values computed by hand."""
import math

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.metrics import (
    agnostic_accuracy,
    agnostic_distribution_names,
    agnostic_prior,
    calibration,
    calibration_scores,
    evaluate,
    per_sample_summary,
)

# Four images, three classes; the logits are log-probabilities, so the softmax is these rows.
PROBS = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.35, 0.33, 0.32]])
LABELS = np.array([0, 1, 0, 2])


def test_summary_holds_top_k_probabilities_true_class_and_squares():
    summary = per_sample_summary(np.log(PROBS), LABELS, k=2)
    assert summary["top_k"].tolist() == [[0, 1], [0, 1], [0, 1], [0, 1]]  # ties (0.05, 0.05) by class index
    np.testing.assert_allclose(summary["top_prob"], [[0.9, 0.05], [0.9, 0.05], [0.5, 0.3], [0.35, 0.33]], rtol=1e-6)
    np.testing.assert_allclose(summary["true_prob"], [0.9, 0.05, 0.5, 0.32], rtol=1e-6)
    np.testing.assert_allclose(summary["sq_sum"], [0.815, 0.815, 0.38, 0.1225 + 0.1089 + 0.1024], rtol=1e-6)
    assert summary["labels"].dtype == np.int32 and summary["top_k"].dtype == np.int32


def test_top_1_is_argmax_even_with_ties_outside_the_partition():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 3, size=(500, 40)).astype(np.float32)  # many ties at the top
    summary = per_sample_summary(logits, np.zeros(500, dtype=np.int64), chunk=64)
    assert (summary["top_k"][:, 0] == logits.argmax(axis=1)).all()
    rows = np.arange(500)[:, None]
    assert (np.diff(logits[rows, summary["top_k"]], axis=1) <= 0).all()  # descending


def test_calibration_scores_by_hand():
    scores = calibration_scores(per_sample_summary(np.log(PROBS), LABELS))
    # 15 bins: 0.9 -> (13/15, 14/15] with 2 images (1 right): |0.5 - 0.9| * 2/4; 0.5 -> (7/15, 8/15]:
    # |1 - 0.5| * 1/4; 0.35 -> (5/15, 6/15]: |0 - 0.35| * 1/4.
    assert scores["ece"] == pytest.approx(100 * (0.4 * 2 / 4 + 0.5 / 4 + 0.35 / 4))
    assert scores["mce"] == pytest.approx(50.0)
    assert scores["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.05) + math.log(0.5) + math.log(0.32)) / 4)
    # Brier: sum over classes of (p - y)^2 per image.
    brier = [0.01 + 0.0025 + 0.0025, 0.81 + 0.9025 + 0.0025, 0.25 + 0.09 + 0.04, 0.1225 + 0.1089 + 0.4624]
    assert scores["brier"] == pytest.approx(sum(brier) / 4)


def test_a_confidence_on_a_bin_edge_goes_to_the_lower_bin():
    # 2/3 = 10/15 exactly: bin (9/15, 10/15]; with one image the gap is |1 - 2/3|.
    summary = per_sample_summary(np.log([[2 / 3, 1 / 3]]), np.array([0]))
    assert calibration_scores(summary)["ece"] == pytest.approx(100 / 3, rel=1e-5)
    assert calibration_scores(per_sample_summary(np.array([[50.0, 0.0]]), np.array([0])))["ece"] == pytest.approx(0, abs=1e-9)


def test_calibration_per_shot_group_uses_the_images_of_its_classes():
    summary = per_sample_summary(np.log(PROBS), LABELS)
    result = calibration(summary, [200, 50, 5])  # class 0 many, 1 medium, 2 few
    assert result["bins"] == 15
    many = calibration_scores(per_sample_summary(np.log(PROBS[[0, 2]]), LABELS[[0, 2]]))
    assert result["many"] == pytest.approx(many)
    assert result["few"]["nll"] == pytest.approx(-math.log(0.32))
    assert calibration({k: v[:0] for k, v in summary.items()}, [200, 50, 5])["ece"] is None


def test_priors_rank_classes_by_training_count():
    counts = [10, 100, 50]  # ranks: class 1 first, class 2, class 0 last
    np.testing.assert_allclose(agnostic_prior("forward-50", counts), np.array([1 / 50, 1, 50 ** -0.5]) / (1 + 50 ** -0.5 + 1 / 50))
    np.testing.assert_allclose(agnostic_prior("backward-2", counts), np.array([1, 1 / 2, 2 ** -0.5]) / (1.5 + 2 ** -0.5))
    np.testing.assert_allclose(agnostic_prior("uniform", counts), [1 / 3] * 3)
    q = agnostic_prior("forward-25", np.arange(100, 0, -1))
    assert q[0] / q[-1] == pytest.approx(25) and (np.diff(q) < 0).all()
    with pytest.raises(UserError, match="unknown test distribution 'sideways-3'"):
        agnostic_prior("sideways-3", counts)


def test_test_agnostic_accuracy_by_hand():
    counts, per_class = [10, 100, 50], [30.0, 90.0, 60.0]
    result = agnostic_accuracy(per_class, counts)
    assert list(result) == agnostic_distribution_names() and len(result) == 11
    r = 50 ** -0.5
    assert result["forward-50"] == pytest.approx((90 + 60 * r + 30 / 50) / (1 + r + 1 / 50))
    assert result["uniform"] == pytest.approx(60.0)
    assert result["backward-50"] == pytest.approx((30 + 60 * r + 90 / 50) / (1 + r + 1 / 50))
    # A class without test images is left out, the prior renormalised over the others.
    partial = agnostic_accuracy([None, 90.0, 60.0], counts)
    assert partial["forward-50"] == pytest.approx((90 + 60 * r) / (1 + r))


def test_evaluate_records_test_agnostic_and_calibration():
    logits = np.log(PROBS)
    metrics = evaluate(logits, LABELS, [200, 50, 5], train_counts=[10, 100, 50])
    # per-class accuracy: class 0: 2/2, class 1: 0/1, class 2: 0/1.
    assert metrics["test_agnostic"]["uniform"] == pytest.approx(100 / 3)
    assert metrics["test_agnostic"]["backward-50"] == pytest.approx(100 / (1 + 50 ** -0.5 + 1 / 50))
    assert metrics["calibration"]["ece"] == pytest.approx(calibration_scores(per_sample_summary(logits, LABELS))["ece"])
