"""Evaluation metrics for long-tailed recognition.

Many / medium / few are means of per-class accuracies, with classes grouped by their number of
TRAINING images. Rules: 'standard' (classifier-balancing, BALLAD, LIFT: many > 100, medium
20..100, few < 20) and 'oltr' (OLTR's code: many >= 100, few <= 20). All accuracies in percent.
"""
from typing import Dict, Optional

import numpy as np

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


def evaluate(logits, labels, class_counts, rule: str = "standard") -> dict:
    """All metrics of one evaluation: overall top-1 / top-5, mean per-class, macro-F1, shot groups."""
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = logits.shape[1]
    if len(class_counts) != num_classes:
        raise ValueError(f"{len(class_counts)} class counts for {num_classes}-way logits")
    predictions = logits.argmax(axis=1)
    k = min(5, num_classes)
    top_k = np.argpartition(-logits, kth=k - 1, axis=1)[:, :k]
    per_class = per_class_accuracy(predictions, labels, num_classes)
    return {
        "overall": float(100.0 * (predictions == labels).mean()),
        **grouped_accuracy(per_class, class_counts, rule),
        "mean_per_class": float(np.nanmean(per_class)),
        "top5": float(100.0 * (top_k == labels[:, None]).any(axis=1).mean()),
        "macro_f1": macro_f1(predictions, labels, num_classes),
        "num_images": int(len(labels)),
        "shot_rule": rule,
        "group_sizes": group_sizes(class_counts, rule),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
    }


def format_scores(metrics: dict) -> str:
    """'overall 65.00  many 96.67  medium 84.17  few 43.33' (a group without classes: '-')."""
    groups = "  ".join(f"{g} {metrics[g]:.2f}" if metrics[g] is not None else f"{g} -" for g in GROUPS)
    return f"overall {metrics['overall']:.2f}  {groups}"
