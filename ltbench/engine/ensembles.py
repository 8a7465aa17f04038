"""Ensembles of classifiers' test predictions: weighted means of probabilities or of logit-adjusted
logits, with the weights fixed or chosen on the val split.

- ``probs``: p = sum_i w_i softmax(z_i); the ensemble's logits are log p (same ranking);
- ``logit_adjusted``: z = sum_i w_i (z_i - a_i log pi), with pi the training class prior and a_i
  a member's adjustment strength (1 for a member trained with plain CE on the long-tailed set,
  0 for one that is balanced already: zero-shot CLIP, Balanced Softmax, class-balanced sampling).

Weights are non-negative and sum to 1. Chosen on val, they are the point of a grid over the
simplex (step ``step``) with the best val top-1 accuracy; ties go to the first grid point.
"""
import itertools
from typing import Iterable, List, Optional, Sequence

import numpy as np
import torch

from ltbench.core.chunks import row_chunks
from ltbench.core.errors import UserError, unknown_name
from ltbench.engine.selection import choose_on_val

COMBINE_RULES = ("probs", "logit_adjusted")


def member_scores(logits, rule: str, log_prior: Optional[np.ndarray] = None, adjust: float = 0.0) -> np.ndarray:
    """What a member contributes to the weighted sum: its probabilities, or its adjusted logits."""
    logits = np.asarray(logits, dtype=np.float32)
    if rule == "probs":
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    if rule == "logit_adjusted":
        return logits - float(adjust) * log_prior if adjust else logits
    raise unknown_name("ensemble combine rule", rule, COMBINE_RULES)


def combine(scores: Sequence[np.ndarray], weights: Sequence[float], rule: str) -> np.ndarray:
    """Ensemble logits [N, C] of members' scores (``member_scores``) under ``weights``."""
    total = sum(float(weight) * score for weight, score in zip(weights, scores))
    if rule == "probs":
        return np.log(np.maximum(total, 1e-30)).astype(np.float32)
    return np.asarray(total, dtype=np.float32)


def simplex_grid(num_members: int, step: float) -> np.ndarray:
    """Every weight vector with entries in multiples of ``step`` that sum to 1, [G, M]."""
    if not 0 < step <= 1 or abs(round(1 / step) - 1 / step) > 1e-6:
        raise UserError(f"ensemble weight step must divide 1 (0.1, 0.05, 0.01), got {step!r}")
    parts = int(round(1 / step))
    if num_members == 1:
        return np.ones((1, 1))
    points = [combo + (parts - sum(combo),) for combo in itertools.product(range(parts + 1), repeat=num_members - 1)
              if sum(combo) <= parts]
    # First weight descending: with two members the grid runs w = 1, 0.95, ..., 0 for member 1.
    points.sort(key=lambda point: tuple(-value for value in point))
    return np.asarray(points, dtype=np.float64) / parts


def choose_weights(val_scores: Sequence[np.ndarray], val_labels, rule: str, step: float):
    """(weights, val top-1 %) of the grid point with the best val accuracy."""
    return choose_weights_in_chunks([val_scores], [np.asarray(val_labels)], rule, step)


def choose_weights_in_chunks(chunks: Iterable[Sequence[np.ndarray]], labels: Sequence[np.ndarray], rule: str,
                             step: float):
    """choose_weights over val images given as chunks of rows (each chunk: the members' scores of
    those rows, and its labels), so that no member's scores of every image are in memory at once."""
    grid = None
    correct = None
    for scores, chunk_labels in zip(chunks, labels):
        if grid is None:
            grid = simplex_grid(len(scores), step)
            correct = np.zeros(len(grid), dtype=np.int64)
        for index, weights in enumerate(grid):
            correct[index] += int((combine(scores, weights, rule).argmax(axis=1) == chunk_labels).sum())
    total = sum(len(chunk_labels) for chunk_labels in labels)
    # 100 * (count / N): the value the mean of the correct flags gives; ties go to the first grid point.
    accuracies = [float(100.0 * (count / total)) for count in correct]
    best = int(np.argmax(accuracies))
    return [float(weight) for weight in grid[best]], accuracies[best]


def fixed_weights(weights, num_members: int) -> List[float]:
    """User-given weights (numbers >= 0, not all 0: the ENSEMBLE options' check), one per member,
    normalised to sum to 1."""
    if not isinstance(weights, (list, tuple)) or len(weights) != num_members:
        raise UserError(f"ensemble.weights must be {num_members} non-negative numbers (one per member) "
                        f"or null to choose them on val, got {weights!r}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


class WeightedEnsemble:
    """An ensemble as configured by an ``ensemble`` section: combine (probs | logit_adjusted),
    weights (null: chosen on val), weight_step, adjust (one strength per member, null: all 0)."""

    def __init__(self, section: dict, num_members: int, train_class_counts):
        self.rule = section["combine"]
        if self.rule not in COMBINE_RULES:
            raise unknown_name("ensemble.combine", self.rule, COMBINE_RULES)
        adjust = section.get("adjust")
        self.adjust = [0.0] * num_members if adjust is None else fixed_adjustments(adjust, num_members)
        counts = np.asarray(train_class_counts, dtype=np.float64)
        self.log_prior = np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32)
        self.step = float(section.get("weight_step", 0.05))
        self.fixed = section.get("weights") is not None
        self.weights = fixed_weights(section["weights"], num_members) if self.fixed else None
        self.val_top1 = None

    def _scores(self, member_logits, rows=slice(None)):
        return [member_scores(np.asarray(logits)[rows], self.rule, self.log_prior, adjust)
                for logits, adjust in zip(member_logits, self.adjust)]

    @staticmethod
    def _chunks(member_logits):
        """Row chunks of the members' [N, C] logits: every pass below holds the members' scores of
        one chunk (core.chunks), not of all N images (iNaturalist: 0.8 GB a member in float32)."""
        num_rows, num_classes = np.shape(member_logits[0])
        return row_chunks(num_rows, num_classes * len(member_logits))

    def fit(self, val_member_logits, val_labels):
        """Choose the weights on val (unless fixed); records the val top-1 of the chosen weights."""
        labels = np.asarray(val_labels)
        chunks = self._chunks(val_member_logits)
        if self.weights is None:
            self.weights, self.val_top1 = choose_weights_in_chunks(
                (self._scores(val_member_logits, rows) for rows in chunks), [labels[rows] for rows in chunks],
                self.rule, self.step)
        else:
            correct = sum(int((combine(self._scores(val_member_logits, rows), self.weights, self.rule).argmax(axis=1)
                               == labels[rows]).sum()) for rows in chunks)
            self.val_top1 = float(100.0 * (correct / len(labels)))

    def __call__(self, member_logits) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("WeightedEnsemble.fit must run before the ensemble predicts")
        out = np.empty(np.shape(member_logits[0]), dtype=np.float32)
        for rows in self._chunks(member_logits):
            out[rows] = combine(self._scores(member_logits, rows), self.weights, self.rule)
        return out

    def summary(self, member_names, chosen_on: str) -> dict:
        return {"members": list(member_names), "combine": self.rule, "adjust": self.adjust,
                "weights": self.weights, "weights_from": chosen_on, "val_top1": self.val_top1}

    def weights_origin(self, data, eval_split, ctx) -> str:
        """Where the weights came from, for the record: "fixed", or where choose_on_val chose them
        (a val split that is the evaluation split itself flatters the result: a warning)."""
        if self.fixed:
            return "fixed"
        return choose_on_val(data, eval_split.name, "the ensemble's weights", ctx,
                             fix="fix them (ensemble.weights) for an unbiased result")[1]


def fixed_adjustments(adjust, num_members: int) -> List[float]:
    if not isinstance(adjust, (list, tuple)) or len(adjust) != num_members:
        raise UserError(f"ensemble.adjust must be {num_members} numbers (one per member; 1 = subtract the "
                        f"log training prior, 0 = leave the logits) or null, got {adjust!r}")
    return [float(a) for a in adjust]


def ensemble_for(section: dict, num_members: int, data) -> WeightedEnsemble:
    """The configured ensemble of ``num_members`` members for a dataset, checked before any member
    is trained: weights chosen on val need a val split."""
    if section.get("weights") is None and "val" not in data.splits:
        raise UserError(f"ensemble.weights=null chooses weights on val, but dataset '{data.name}' has "
                        "no val split; fix them, e.g. ensemble.weights=[0.5,0.5]")
    return WeightedEnsemble(section, num_members, data.class_counts)
