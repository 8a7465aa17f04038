"""Evaluation metrics for long-tailed recognition.

Many / medium / few are means of per-class accuracies, with classes grouped by their number of
TRAINING images. Rules: 'standard' (classifier-balancing, BALLAD, LIFT: many > 100, medium
20..100, few < 20) and 'oltr' (OLTR's code: many >= 100, few <= 20). All accuracies in percent.
"""
from typing import Dict, Optional

import numpy as np

from ltbench.core.chunks import row_chunks

SHOT_RULES = {
    # rule: (is_many(n), is_few(n)); everything else is medium.
    "standard": (lambda n: n > 100, lambda n: n < 20),
    "oltr": (lambda n: n >= 100, lambda n: n <= 20),
}
GROUPS = ("many", "medium", "few")


def shot_groups(class_counts, rule: str = "standard") -> np.ndarray:
    """'many' / 'medium' / 'few' for each class, from its training image count."""
    if rule not in SHOT_RULES:
        from ltbench.core.errors import unknown_name

        raise unknown_name("shot rule", rule, SHOT_RULES)
    counts = np.asarray(class_counts)
    is_many, is_few = SHOT_RULES[rule]
    groups = np.full(len(counts), "medium", dtype=object)
    groups[is_many(counts)] = "many"
    groups[is_few(counts)] = "few"
    return groups


def group_sizes(class_counts, rule: str = "standard") -> Dict[str, int]:
    groups = shot_groups(class_counts, rule)
    return {name: int((groups == name).sum()) for name in GROUPS}


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Percent correct per class; NaN for a class with no evaluation images."""
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[predictions == labels], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * correct / np.maximum(totals, 1), np.nan)


def grouped_accuracy(per_class: np.ndarray, class_counts, rule: str = "standard") -> Dict[str, Optional[float]]:
    """Mean per-class accuracy of each shot group (None for a group with no evaluated class)."""
    groups = shot_groups(class_counts, rule)
    result = {}
    for name in GROUPS:
        values = per_class[(groups == name) & ~np.isnan(per_class)]
        result[name] = float(values.mean()) if len(values) else None
    return result


def macro_f1(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes that occur in labels or predictions."""
    true_positive = np.bincount(labels[predictions == labels], minlength=num_classes).astype(np.float64)
    predicted = np.bincount(predictions, minlength=num_classes).astype(np.float64)
    actual = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = (predicted + actual) > 0
    f1 = 2 * true_positive[present] / (predicted[present] + actual[present])
    return float(100.0 * f1.mean()) if present.any() else 0.0


def top1_and_top5(logits: np.ndarray, labels: np.ndarray):
    """([N] argmax class, [N] bool: the label among the 5 highest logits), a chunk of rows at a
    time (core.chunks; argpartition works row by row, so the same answer as on the whole array)."""
    n, num_classes = logits.shape
    k = min(5, num_classes)
    predictions = np.empty(n, dtype=np.int64)
    in_top5 = np.empty(n, dtype=bool)
    for rows in row_chunks(n, num_classes):
        block = logits[rows]
        predictions[rows] = block.argmax(axis=1)
        top_k = np.argpartition(-block, kth=k - 1, axis=1)[:, :k]
        in_top5[rows] = (top_k == labels[rows, None]).any(axis=1)
    return predictions, in_top5


def evaluate(logits, labels, class_counts, rule: str = "standard", train_counts=None, summary=None) -> dict:
    """All metrics of one evaluation: overall top-1 / top-5, mean per-class, macro-F1, shot groups,
    'test_agnostic' (agnostic_accuracy, classes ranked by train_counts, default class_counts) and
    'calibration' (from the per-sample summary, computed from the logits unless given)."""
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if summary is None:
        summary = per_sample_summary(logits, labels)
    num_classes = logits.shape[1]
    if len(class_counts) != num_classes:
        raise ValueError(f"{len(class_counts)} class counts for {num_classes}-way logits")
    predictions, in_top5 = top1_and_top5(logits, labels)
    per_class = per_class_accuracy(predictions, labels, num_classes)
    return {
        "overall": float(100.0 * (predictions == labels).mean()),
        **grouped_accuracy(per_class, class_counts, rule),
        "mean_per_class": float(np.nanmean(per_class)),
        "top5": float(100.0 * in_top5.mean()),
        "macro_f1": macro_f1(predictions, labels, num_classes),
        "num_images": int(len(labels)),
        "shot_rule": rule,
        "group_sizes": group_sizes(class_counts, rule),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "test_agnostic": agnostic_accuracy(per_class, class_counts if train_counts is None else train_counts),
        "calibration": calibration(summary, class_counts, rule),
    }


def format_scores(metrics: dict) -> str:
    """'overall 65.00  many 96.67  medium 84.17  few 43.33' (a group without classes: '-')."""
    groups = "  ".join(f"{g} {metrics[g]:.2f}" if metrics[g] is not None else f"{g} -" for g in GROUPS)
    return f"overall {metrics['overall']:.2f}  {groups}"


# ---------------------------------------------------------------------------------------------
# Per-sample summaries, test-agnostic accuracy and calibration.
#
# A run keeps, per evaluated image, what these need instead of its full logits (see
# ltbench.records.per_sample): the true label, the top-k classes and their softmax probabilities,
# the probability of the true class and the sum of squared probabilities (for the Brier score).

TOP_K = 5
ECE_BINS = 15  # equal-width confidence bins, as in MiSLAS (Zhong et al., CVPR 2021)
NLL_FLOOR = 1e-12  # a true-class probability that underflowed to 0 counts as this
TEST_AGNOSTIC_FACTORS = (50, 25, 10, 5, 2)


def per_sample_summary(logits, labels, k: int = TOP_K, chunk: Optional[int] = None) -> Dict[str, np.ndarray]:
    """What a per-sample file holds, from [N, C] logits: softmax (in float64) of the logits as the
    method returned them.

    labels [N] int32; top_k [N, k] int32 classes by descending probability, ties by class index, so
    top_k[:, 0] is logits.argmax(1); top_prob [N, k] float32; true_prob [N] float32; sq_sum [N]
    float32 = sum over all classes of p_c ** 2.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    n, num_classes = logits.shape
    k = min(k, num_classes)
    top_k = np.empty((n, k), dtype=np.int32)
    top_prob = np.empty((n, k), dtype=np.float32)
    true_prob = np.empty(n, dtype=np.float32)
    sq_sum = np.empty(n, dtype=np.float32)
    # A chunk of rows at a time (core.chunks: 16 MB of float64 probabilities), never N x C of them.
    for rows in row_chunks(n, num_classes, None if chunk is None else chunk * num_classes):
        block = np.asarray(logits[rows], dtype=np.float64)
        index = np.arange(len(block))
        shifted = np.exp(block - block.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        candidates = np.argpartition(-block, kth=k - 1, axis=1)[:, :k] if k < num_classes else \
            np.broadcast_to(np.arange(num_classes), block.shape).copy()
        values = np.take_along_axis(block, candidates, axis=1)
        order = np.lexsort((candidates, -values), axis=-1)
        chosen = np.take_along_axis(candidates, order, axis=1)
        # A tie at the top that argpartition left out of the candidates: sort that row in full.
        for row in np.flatnonzero(chosen[:, 0] != block.argmax(axis=1)):
            chosen[row] = np.argsort(-block[row], kind="stable")[:k]
        top_k[rows] = chosen
        top_prob[rows] = probs[index[:, None], chosen]
        true_prob[rows] = probs[index, labels[rows]]
        sq_sum[rows] = (probs ** 2).sum(axis=1)
    return {"labels": labels.astype(np.int32), "top_k": top_k, "top_prob": top_prob,
            "true_prob": true_prob, "sq_sum": sq_sum}


def calibration_scores(summary: Dict[str, np.ndarray], bins: int = ECE_BINS) -> Dict[str, Optional[float]]:
    """ECE and MCE (percent), NLL (nats) and Brier score of a per-sample summary; None when empty.

    ECE: confidence = top-1 probability, correct = top-1 class is the label; images in `bins`
    equal-width bins of confidence ((0, 1/bins], ..., ((bins-1)/bins, 1]); sum over bins of
    (images in bin / N) * |accuracy - mean confidence|. MCE: the largest such gap over non-empty bins.
    NLL: mean of -ln(true-class probability). Brier: mean over images of sum_c (p_c - y_c)^2
    = sq_sum - 2 * true_prob + 1 (the multi-class form, 0..2).
    """
    n = len(summary["labels"])
    if n == 0:
        return {"ece": None, "mce": None, "nll": None, "brier": None}
    confidence = summary["top_prob"][:, 0].astype(np.float64)
    correct = (summary["top_k"][:, 0] == summary["labels"]).astype(np.float64)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0 cannot occur.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    gaps = np.abs(np.bincount(index, weights=correct, minlength=bins)
                  - np.bincount(index, weights=confidence, minlength=bins))
    filled = counts > 0
    true_prob = summary["true_prob"].astype(np.float64)
    return {
        "ece": float(100.0 * gaps.sum() / n),
        "mce": float(100.0 * (gaps[filled] / counts[filled]).max()),
        "nll": float(-np.log(np.maximum(true_prob, NLL_FLOOR)).mean()),
        "brier": float((summary["sq_sum"].astype(np.float64) - 2 * true_prob + 1).mean()),
    }


def calibration(summary: Dict[str, np.ndarray], class_counts, rule: str = "standard", bins: int = ECE_BINS) -> dict:
    """calibration_scores overall and for the images of each shot group's classes."""
    groups = shot_groups(class_counts, rule)[summary["labels"]]
    result = {**calibration_scores(summary, bins), "bins": bins}
    for name in GROUPS:
        mask = groups == name
        result[name] = calibration_scores({key: value[mask] for key, value in summary.items()}, bins)
    return result


def agnostic_distribution_names():
    """forward-50 .. forward-2, uniform, backward-2 .. backward-50 (SADE's test-agnostic protocol)."""
    return ([f"forward-{f}" for f in TEST_AGNOSTIC_FACTORS] + ["uniform"]
            + [f"backward-{f}" for f in reversed(TEST_AGNOSTIC_FACTORS)])


def agnostic_prior(name: str, train_counts) -> np.ndarray:
    """The test label distribution q (sums to 1) that a test-agnostic name stands for.

    Classes are ranked by training count, most frequent first (ties by class index). forward-F:
    q of the class at rank r (0..C-1) proportional to F ** (-r / (C - 1)), so the most frequent class
    is F times as likely as the rarest; backward-F reverses the ranks; uniform: 1 / C.
    """
    counts = np.asarray(train_counts)
    num_classes = len(counts)
    ranks = np.empty(num_classes, dtype=np.float64)
    ranks[np.argsort(-counts, kind="stable")] = np.arange(num_classes)
    if name == "uniform" or num_classes == 1:
        weights = np.ones(num_classes)
    else:
        direction, _, factor = name.partition("-")
        if direction not in ("forward", "backward") or not factor.isdigit():
            from ltbench.core.errors import unknown_name

            raise unknown_name("test distribution", name, agnostic_distribution_names())
        position = ranks if direction == "forward" else (num_classes - 1) - ranks
        weights = float(factor) ** (-position / (num_classes - 1))
    return weights / weights.sum()


def agnostic_accuracy(per_class, train_counts) -> Dict[str, Optional[float]]:
    """Accuracy (percent) under each shifted test label distribution q: sum_c q_c * acc_c, exact
    because each class's accuracy acc_c is measured on its own images. Classes without evaluation
    images are left out and q renormalised over the rest; None when no class was evaluated.
    """
    per_class = np.array([np.nan if v is None else v for v in per_class], dtype=np.float64)
    measured = ~np.isnan(per_class)
    result = {}
    for name in agnostic_distribution_names():
        prior = agnostic_prior(name, train_counts)[measured]
        result[name] = float((prior * per_class[measured]).sum() / prior.sum()) if measured.any() else None
    return result
