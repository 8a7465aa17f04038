"""The post-hoc adjustments' arithmetic on logits [N, C], and the target prior a file gives.

- logit adjustment (Menon et al., ICLR 2021): z_c - tau * log p_c, p the training class prior;
- prior correction: z_c - log p_c + log q_c, q a known target prior (uniform: the same ranking as
  logit adjustment with tau 1);
- tau-normalisation (Kang et al., ICLR 2020): ``tau_normalised_logits`` of ltbench.models.calibration.
"""
import json
from pathlib import Path

import numpy as np

from ltbench.api import UserError
from ltbench.api.calibration import row_chunks
from ltbench.methods.posthoc.options import PRIOR_NUMBERS


def log_prior(class_counts) -> np.ndarray:
    """log p_c of the training counts (a class without images counts as one, so log p stays finite)."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1)
    return np.log(counts / counts.sum())


def rowwise(logits, compute) -> np.ndarray:
    """float32 compute(float64 rows of logits), a chunk of rows at a time: no float64 copy of all
    [N, C] logits (1.6 GB at iNaturalist's test size) and the same numbers as on the whole array."""
    logits = np.asarray(logits)
    out = np.empty(logits.shape, dtype=np.float32)
    for rows in row_chunks(*logits.shape):
        out[rows] = compute(logits[rows].astype(np.float64))
    return out


def logit_adjusted(logits, train_log_prior: np.ndarray, tau: float) -> np.ndarray:
    return rowwise(logits, lambda z: z - float(tau) * train_log_prior)


def prior_corrected(logits, train_log_prior: np.ndarray, target_log_prior: np.ndarray) -> np.ndarray:
    return rowwise(logits, lambda z: z - train_log_prior + target_log_prior)


def top1(logits, labels) -> float:
    return float(100.0 * (np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean())


def read_target_prior(spec):
    """target_prior as given: None for uniform, else the list of numbers (read from a file if a
    path: .json with a list, .npy, or text with one number per line or space), checked > 0."""
    if spec == "uniform":
        return None
    values = spec
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"target_prior={spec!r}: no such file; give uniform, a list of one number per class "
                            "or a .json / .npy / .txt file of them")
        try:
            if path.suffix == ".npy":
                values = np.load(path).tolist()
            elif path.suffix == ".json":
                values = json.loads(path.read_text(encoding="utf-8"))
            else:
                values = [float(token) for token in path.read_text(encoding="utf-8").split()]
        except (OSError, ValueError) as error:
            raise UserError(f"target_prior={spec!r}: not a readable list of numbers ({error})") from None
    if PRIOR_NUMBERS.problem(values) is not None:
        raise UserError(f"target_prior={spec!r} must be uniform, or one number > 0 per class (a list or a "
                        "file of them; they are normalised to sum to 1)")
    return [float(v) for v in values]


def target_log_prior(values, num_classes: int, spec) -> np.ndarray:
    """log q_c: uniform (values None) or the given numbers normalised, one per class."""
    if values is None:
        return np.full(num_classes, -np.log(num_classes))
    if len(values) != num_classes:
        raise UserError(f"target_prior={spec!r} has {len(values)} numbers, but this dataset has "
                        f"{num_classes} classes; give one per class")
    values = np.asarray(values, dtype=np.float64)
    return np.log(values / values.sum())
