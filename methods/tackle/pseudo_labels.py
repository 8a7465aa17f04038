"""Pseudo-labels for an unlabeled pool from a CLIP classifier, and the rules that pick which to keep.

TACKLE's rule: p_k = exp(t_k . f / tau) / sum_j exp(t_j . f / tau) for image feature f and class
text feature t_k. Each pool image is assigned to its most probable class over *all* classes, so
an image that looks like a head class is never forced into a tail class; then only images whose
assigned class is eligible and whose probability passes the threshold are kept, the most
confident first, within the per-class limits. The paper publishes none of these limits.
"""
import itertools
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from ltbench.api import UserError, unknown_name
from ltbench.api.pools import GROUPS, SHOT_RULES, shot_groups

# Which classes may receive pool images, by their shot group in the original train split.
ELIGIBLE_GROUPS = {"few": ("few",), "medium_few": ("medium", "few"), "all": GROUPS}


def pool_assignments(features, text_features, tau: float, batch_size: int = 16384):
    """(assigned class [N], its probability [N]) under p = softmax_k((f . t_k) / tau), as numpy.

    features: a numpy array [N, D] (the cache's memory map); text_features [C, D]: a tensor (the
    work runs on its device) or an array. In batches, keeping only the arg-max: a pool of a
    million images times a thousand classes would not fit in memory as one probability table.
    """
    if not tau > 0:
        raise UserError(f"teacher.tau must be > 0 (0.01 = CLIP's logit scale 100), got {tau!r}")
    text = torch.as_tensor(text_features, dtype=torch.float32)
    assigned, confidence = [], []
    for start in range(0, len(features), batch_size):
        # np.array copies: the features may be a read-only memory map from the cache.
        rows = torch.from_numpy(np.array(features[start: start + batch_size], dtype=np.float32)).to(text.device)
        best = torch.softmax(rows @ text.t() / float(tau), dim=1).max(dim=1)
        assigned.append(best.indices)
        confidence.append(best.values)
    if not assigned:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    # One copy to the host at the end, not one sync per batch.
    return torch.cat(assigned).cpu().numpy().astype(np.int64), torch.cat(confidence).cpu().numpy()


def assignments_from_probabilities(probabilities) -> tuple:
    """(arg-max class, its probability) of each row of a probability table [N, C]."""
    probabilities = np.asarray(probabilities)
    assigned = probabilities.argmax(axis=1)
    return assigned, probabilities[np.arange(len(assigned)), assigned]


def largest_non_many_count(rule: str) -> int:
    """The most training images a class can have and not be many-shot (100 under 'standard')."""
    if rule not in SHOT_RULES:
        raise unknown_name("shot rule", rule, SHOT_RULES)
    is_many = SHOT_RULES[rule][0]
    return next(count for count in itertools.count() if is_many(count)) - 1


@dataclass
class Selection:
    """Kept pool images: positions in the pool, their pseudo-labels and probabilities."""

    indices: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    added_per_class: np.ndarray


def select_pseudo_labels(assigned, confidence, class_counts, classes: str = "few",
                         threshold: float = 0.0, top_n: Optional[int] = None, cap_at_many: bool = True,
                         shot_rule: str = "standard") -> Selection:
    """Which pool images join the train set, and with which class.

    assigned / confidence: each pool image's most probable class and its probability
    (``pool_assignments``). classes: few | medium_few | all, by shot group of ``class_counts``
    (the train split's counts). threshold: keep an image only if p of its assigned class is >= threshold; top_n: at most this
    many per class (None: no limit); cap_at_many: a class never ends above
    ``largest_non_many_count`` images, train and pool together. Per class, the most confident
    images are kept first; ties go to the earlier pool position, so the result is deterministic.
    The options are checked where they are declared (options.py), before any work.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    assigned, confidence = np.asarray(assigned, dtype=np.int64), np.asarray(confidence)
    if len(assigned) and (assigned.min() < 0 or assigned.max() >= len(counts)):
        raise ValueError(f"pseudo-labels outside 0..{len(counts) - 1}")

    limits = np.full(len(counts), np.iinfo(np.int64).max, dtype=np.int64)
    limits[~np.isin(shot_groups(counts, shot_rule), ELIGIBLE_GROUPS[classes])] = 0
    if top_n is not None:
        limits = np.minimum(limits, top_n)
    if cap_at_many:
        limits = np.minimum(limits, np.maximum(0, largest_non_many_count(shot_rule) - counts))

    candidates = np.flatnonzero((confidence >= float(threshold)) & (limits[assigned] > 0))
    # Group by class, most confident first within a class (stable: earlier pool position first).
    order = candidates[np.lexsort((-confidence[candidates], assigned[candidates]))]
    order_classes = assigned[order]
    starts = np.searchsorted(order_classes, order_classes, side="left")
    rank_in_class = np.arange(len(order)) - starts
    kept = np.sort(order[rank_in_class < limits[order_classes]])
    return Selection(indices=kept, labels=assigned[kept], confidence=confidence[kept],
                     added_per_class=np.bincount(assigned[kept], minlength=len(counts)))


def pseudo_label_precision(selection: Selection, hidden_labels, class_counts,
                           shot_rule: str = "standard") -> Optional[Dict[str, Optional[float]]]:
    """Percent of kept images whose pseudo-label is their hidden label: overall and per shot group
    of the class they were given (None for a group that received no image with a known label).
    None when the pool's labels are all unknown (-1); kept images with an unknown label are left
    out of the counts."""
    all_hidden = np.asarray(hidden_labels, dtype=np.int64)
    if (all_hidden < 0).all():
        return None
    hidden = all_hidden[selection.indices]
    known = hidden >= 0
    correct = selection.labels[known] == hidden[known]
    groups = shot_groups(class_counts, shot_rule)[selection.labels[known]]

    def percent(mask):
        return float(100.0 * correct[mask].mean()) if mask.any() else None

    result = {"overall": percent(np.ones(len(correct), dtype=bool))}
    result.update({name: percent(groups == name) for name in GROUPS})
    result["images_with_known_label"] = int(known.sum())
    return result
