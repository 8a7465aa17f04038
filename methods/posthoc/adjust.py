"""The post-hoc adjustments' arithmetic on logits [N, C] and the checks of their options.

- logit adjustment (Menon et al., ICLR 2021): z_c - tau * log p_c, p the training class prior;
- prior correction: z_c - log p_c + log q_c, q a known target prior (uniform: the same ranking as
  logit adjustment with tau 1);
- tau-normalisation (Kang et al., ICLR 2020): ``tau_normalised_logits`` of ltbench.models.calibration.
"""
import json
from pathlib import Path

import numpy as np

from ltbench.api import UserError
from ltbench.api.checks import is_real

TAU_MAX = 10.0  # [ours] a sanity bound: beyond it every adjustment has long saturated


def log_prior(class_counts) -> np.ndarray:
    """log p_c of the training counts (a class without images counts as one, so log p stays finite)."""
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1)
    return np.log(counts / counts.sum())


def logit_adjusted(logits, train_log_prior: np.ndarray, tau: float) -> np.ndarray:
    return (np.asarray(logits, dtype=np.float64) - float(tau) * train_log_prior).astype(np.float32)


def prior_corrected(logits, train_log_prior: np.ndarray, target_log_prior: np.ndarray) -> np.ndarray:
    return (np.asarray(logits, dtype=np.float64) - train_log_prior + target_log_prior).astype(np.float32)


def top1(logits, labels) -> float:
    return float(100.0 * (np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean())


def _is_number(value) -> bool:
    return is_real(value) and np.isfinite(value)


def check_tau(key: str, value, nullable: bool = True):
    """A fixed tau in [0, TAU_MAX], or null (chosen on val from the grid) where ``nullable``."""
    if value is None and nullable:
        return None
    if not (_is_number(value) and 0 <= value <= TAU_MAX):
        choose = " or null to choose it on val from tau_grid" if nullable else ""
        raise UserError(f"{key}={value!r} must be a number from 0 to {TAU_MAX:g}{choose}")
    return float(value)


def check_grid(key: str, grid) -> list:
    if not (isinstance(grid, list) and grid and all(_is_number(t) and 0 <= t <= TAU_MAX for t in grid)):
        raise UserError(f"{key}={grid!r} must be a non-empty list of numbers from 0 to {TAU_MAX:g}, "
                        "e.g. [0, 0.5, 1]")
    return [float(t) for t in grid]


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
    if not (isinstance(values, list) and values and all(_is_number(v) and v > 0 for v in values)):
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
