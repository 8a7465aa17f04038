"""Classification losses, registered in LOSSES.

Each registered loss is a function
``loss(logits [B, C], targets [B] long, class_counts, progress=None, **options) -> scalar tensor``,
so imbalance-aware losses (which need the training class counts) and plain ones share one call.
``class_counts`` is array-like (list, numpy array, tensor) with the number of training images of
each of the C classes; ``progress`` in [0, 1] is the fraction of training done, used only by
schedules such as LDAM's DRW (None = the start of training). Below p_c = n_c / N is the training
prior of class c. Losses compute in float32 whatever the logits' dtype.

``build_loss(spec)`` binds a loss to its options: spec is a name (``focal``) or a mapping
(``{type: focal, gamma: 1.0}``); an option the loss does not take is a UserError.
"""
import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.core.registry import LOSSES

# Arguments of every loss call, never options.
CALL_ARGUMENTS = ("logits", "targets", "class_counts", "progress")


@LOSSES.register_module(name="ce")
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, class_counts=None,
                  progress=None) -> torch.Tensor:
    """Cross-entropy (softmax over classes, mean over the batch)."""
    return F.cross_entropy(logits.float(), targets)


@LOSSES.register_module(name="focal")
def focal(logits: torch.Tensor, targets: torch.Tensor, class_counts=None, progress=None,
          gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al.): mean of -(1 - p_t)^gamma log p_t, no alpha; gamma 0 is CE."""
    _check("focal", gamma=gamma)
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    return -((1.0 - log_p.exp()).clamp_min(0.0).pow(gamma) * log_p).mean()


@LOSSES.register_module(name="balanced_softmax")
def balanced_softmax(logits: torch.Tensor, targets: torch.Tensor, class_counts, progress=None,
                     tau: float = 1.0) -> torch.Tensor:
    """Balanced Softmax (Ren et al.) / logit adjustment (Menon et al.): CE(z + tau log p_c).

    tau 1 (default) is Balanced Softmax, CE(z + log p_c), which is also the logit-adjusted loss
    of Menon et al. with their usual tau 1; other tau give their tau-family; tau 0 is plain CE.
    """
    _check("balanced_softmax", tau=tau)
    logits = logits.float()
    log_prior = _log_prior(_counts("balanced_softmax", class_counts, logits))
    return F.cross_entropy(logits + tau * log_prior, targets)


@LOSSES.register_module(name="class_balanced")
def class_balanced(logits: torch.Tensor, targets: torch.Tensor, class_counts, progress=None,
                   beta: float = None) -> torch.Tensor:
    """Class-balanced CE: weights 1/(C p_c), or Cui et al.'s effective number with beta.

    beta None: w_c = 1 / (C p_c) (inverse frequency, Imbalance-VLM's re-weighting). beta in [0, 1):
    w_c proportional to (1 - beta) / (1 - beta^n_c), normalised so sum_c w_c = C (beta 0: all 1).
    The batch loss is the weighted mean as F.cross_entropy(weight=w) computes it:
    sum_i w_{y_i} CE_i / sum_i w_{y_i} (normalised by the sum of the targets' weights).
    """
    _check("class_balanced", beta=beta)
    logits = logits.float()
    counts = _counts("class_balanced", class_counts, logits)
    if beta is None:
        weights = counts.sum() / (counts.numel() * counts)  # 1 / (C p_c)
    else:
        weights = _effective_number_weights(counts, beta)
    return F.cross_entropy(logits, targets, weight=weights)


@LOSSES.register_module(name="grw")
def grw(logits: torch.Tensor, targets: torch.Tensor, class_counts, progress=None,
        exponent: float = 1.2) -> torch.Tensor:
    """Generalized re-weighting (GRW): CE weighted by w_c ~ p_c^-exponent, sum_c w_c = C.

    Weighted mean as F.cross_entropy(weight=w): sum_i w_{y_i} CE_i / sum_i w_{y_i}. exponent 1.2 is
    Imbalance-VLM's setting (and DisAlign's), exponent 0 plain CE, exponent 1 inverse frequency.
    """
    _check("grw", exponent=exponent)
    logits = logits.float()
    prior = _prior(_counts("grw", class_counts, logits))
    # C * softmax(-exponent log p_c) = p_c^-exponent normalised to sum C, without overflow.
    weights = prior.numel() * torch.softmax(-float(exponent) * prior.log(), dim=0)
    return F.cross_entropy(logits, targets, weight=weights)


@LOSSES.register_module(name="ldam")
def ldam(logits: torch.Tensor, targets: torch.Tensor, class_counts, progress=None,
         max_margin: float = 0.5, scale: float = 1.0, drw_start: float = None,
         drw_beta: float = 0.9999) -> torch.Tensor:
    """LDAM (Cao et al.): margin m_y ~ n_y^-1/4 off the target logit, largest max_margin; optional DRW.

    The margin m_c = K / n_c^(1/4), with K such that the largest margin (the rarest class) is
    max_margin, is subtracted from the target logit only; then all logits are multiplied by
    scale. LDAM's code uses scale 30 with a cosine (normalised) classifier; keep 1.0 for plain
    linear logits, whose scale the head learns. DRW (deferred re-weighting): with drw_start
    set (a fraction of training, in [0, 1]), once progress >= drw_start the CE is weighted by
    effective-number weights (1 - drw_beta) / (1 - drw_beta^n_c), normalised to sum C (weighted
    mean as F.cross_entropy(weight=w)); before that (and with progress None) it is unweighted.
    drw_start 0 re-weights from the start; None never.
    """
    _check("ldam", max_margin=max_margin, scale=scale, drw_start=drw_start, drw_beta=drw_beta)
    logits = logits.float()
    counts = _counts("ldam", class_counts, logits)
    margins = counts.pow(-0.25)
    margins = margins * (float(max_margin) / margins.max())
    target_margin = torch.zeros_like(logits).scatter_(1, targets[:, None], margins[targets][:, None])
    weights = None
    if drw_start is not None and (0.0 if progress is None else float(progress)) >= drw_start:
        weights = _effective_number_weights(counts, drw_beta)
    return F.cross_entropy(float(scale) * (logits - target_margin), targets, weight=weights)


LADE_REGULARIZER_LOGITS = ("raw", "prior_adjusted")


@LOSSES.register_module(name="lade")
def lade(logits: torch.Tensor, targets: torch.Tensor, class_counts, progress=None,
         alpha: float = 0.1, remine_lambda: float = 0.1, regularizer_logits: str = "raw") -> torch.Tensor:
    """LADE (Hong et al. CVPR 2021): PriorCE, CE(z + log p_c), + alpha * the LADE regulariser.

    The regulariser estimates, for each class c, log of the ratio between the target and the
    source label distribution with a regularised (ReMINE) Donsker-Varadhan bound, on logits g:
    first_c = sum of g_c over the batch samples of class c / (count_c + 1e-8) (0 for a class
    absent from the batch); second_c = logsumexp over all B samples of (g_c - log p_c + log(1/C))
    - log B; estimate_c = first_c - second_c - remine_lambda * second_c^2; regulariser =
    -sum_c p_c estimate_c over all C classes. regularizer_logits "raw": g = z (the LADE paper,
    LIFT); "prior_adjusted": g = z + log p_c (Imbalance-VLM's lade_loss adjusts the logits once,
    for PriorCE and the regulariser alike).
    """
    _check("lade", alpha=alpha, remine_lambda=remine_lambda, regularizer_logits=regularizer_logits)
    logits = logits.float()
    batch, num_classes = logits.shape
    log_prior = _log_prior(_counts("lade", class_counts, logits))
    prior_ce = F.cross_entropy(logits + log_prior, targets)
    if regularizer_logits == "prior_adjusted":
        logits = logits + log_prior
    one_hot = F.one_hot(targets, num_classes).to(logits.dtype)  # [B, C]
    first = (one_hot * logits).sum(dim=0) / (one_hot.sum(dim=0) + 1e-8)
    second = torch.logsumexp(logits - log_prior - math.log(num_classes), dim=0) - math.log(batch)
    estimate = first - second - float(remine_lambda) * second.pow(2)
    regulariser = -(log_prior.exp() * estimate).sum()
    return prior_ce + float(alpha) * regulariser


def multi_positive_contrastive(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE over an image-text similarity matrix (BALLAD phase A).

    logits[i, j] = scale * cos(image i, text j), with text j the prompt of image j's class, so
    image i's positives are the texts j with labels[j] == labels[i] (itself included) and text j's
    positives the images of its class. Each direction averages -log softmax over an anchor's
    positives, then over anchors; the loss is the sum of the two directions (the paper's
    L = L_{v->l} + L_{l->v}). Not a registered classification loss: its logits are [B, B].
    """
    logits = logits.float()
    positives = (labels[:, None] == labels[None, :]).float()
    per_positive = positives / positives.sum(dim=1, keepdim=True)  # symmetric mask: same counts per column
    image_to_text = -(per_positive * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(per_positive * F.log_softmax(logits, dim=0)).sum(dim=0).mean()
    return image_to_text + text_to_image


class Loss:
    """A registered loss bound to its options: loss(logits, targets, class_counts, progress=None)."""

    def __init__(self, name: str, fn, options: dict):
        self.name, self.fn, self.options = name, fn, dict(options)
        parameters = inspect.signature(fn).parameters
        # Losses written for the older call without `progress` still work.
        self._takes_progress = "progress" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def __call__(self, logits, targets, class_counts=None, progress=None):
        if self._takes_progress:
            return self.fn(logits, targets, class_counts, progress=progress, **self.options)
        return self.fn(logits, targets, class_counts, **self.options)

    def __repr__(self):
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"{self.name}({options})"


def build_loss(spec) -> Loss:
    """A callable (logits, targets, class_counts, progress=None) from a name or {'type': name, **options}."""
    name, loss_fn, options = registry.resolve_spec(LOSSES, spec, call_arguments=CALL_ARGUMENTS)
    if name in OPTION_CHECKS:  # bad values fail here, before any training
        _check(name, **{key: value for key, value in options.items() if key in OPTION_CHECKS[name]})
    return Loss(name, loss_fn, options)


# ---- option checks and class-count helpers ----

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value):
    return None if _is_number(value) else "a finite number"


def _at_least_zero(value):
    return None if _is_number(value) and value >= 0 else "a number >= 0"


def _positive(value):
    return None if _is_number(value) and value > 0 else "a number > 0"


def _below_one(value):
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def _optional(check, what):
    return lambda value: None if value is None else (check(value) and f"null or {what}")


def _fraction(value):
    return None if _is_number(value) and 0 <= value <= 1 else "a fraction in [0, 1]"


OPTION_CHECKS = {
    "focal": {"gamma": _at_least_zero},
    "balanced_softmax": {"tau": _number},
    "class_balanced": {"beta": _optional(_below_one, "a number in [0, 1)")},
    "grw": {"exponent": _number},
    "ldam": {"max_margin": _at_least_zero, "scale": _positive,
             "drw_start": _optional(_fraction, "a fraction in [0, 1]"), "drw_beta": _below_one},
    "lade": {"alpha": _number, "remine_lambda": _at_least_zero,
             "regularizer_logits": lambda value: None if value in LADE_REGULARIZER_LOGITS
             else f"one of {', '.join(LADE_REGULARIZER_LOGITS)}"},
}


def _check(loss: str, **values):
    for key, value in values.items():
        problem = OPTION_CHECKS[loss][key](value)
        if problem:
            raise UserError(f"loss '{loss}': option {key}={value!r} must be {problem}")


_COUNTS_CACHE = {}  # (id(class_counts), device) -> (class_counts, its values, float32 tensor there)


def _counts(loss: str, class_counts, logits: torch.Tensor) -> torch.Tensor:
    """class_counts as a float32 tensor on the logits' device, checked against the logits' classes.

    Counts given on the CPU (list, numpy array, CPU tensor) are checked and copied to the device
    once per object and device, then reused while their values are unchanged: no host-device
    copy (and sync) per step. Counts already on an accelerator are used as they are, unchecked
    (a check there would sync every step).
    """
    if class_counts is None:
        raise ValueError(f"loss '{loss}' needs the training class counts")
    num_classes = logits.shape[1]
    if isinstance(class_counts, torch.Tensor) and class_counts.device.type != "cpu":
        counts = class_counts.detach().to(device=logits.device, dtype=torch.float32)
        _check_count_shape(loss, counts.shape, num_classes)
        return counts
    values = class_counts.detach().numpy() if isinstance(class_counts, torch.Tensor) else np.asarray(class_counts)
    key = (id(class_counts), logits.device)
    cached = _COUNTS_CACHE.get(key)
    if cached is not None and cached[0] is class_counts and np.array_equal(cached[1], values):
        return cached[2]
    _check_count_shape(loss, values.shape, num_classes)
    values = np.array(values, dtype=np.float64)  # a copy: the snapshot compared on later calls
    if not (values > 0).all():
        empty = np.flatnonzero(~(values > 0))
        shown = ", ".join(str(c) for c in empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise UserError(f"loss '{loss}' needs at least one training image per class; "
                        f"{len(empty)} of {num_classes} have none (class {shown})")
    counts = torch.as_tensor(values, dtype=torch.float32).to(logits.device)
    if len(_COUNTS_CACHE) >= 16:
        _COUNTS_CACHE.clear()
    _COUNTS_CACHE[key] = (class_counts, values, counts)
    return counts


def _check_count_shape(loss: str, shape, num_classes: int):
    if len(shape) != 1 or shape[0] != num_classes:
        raise ValueError(f"loss '{loss}': class counts of shape {tuple(shape)} for logits with "
                         f"{num_classes} classes")


def _prior(counts: torch.Tensor) -> torch.Tensor:
    return counts / counts.sum()


def _log_prior(counts: torch.Tensor) -> torch.Tensor:
    return counts.log() - counts.sum().log()


def _effective_number_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al.: w_c proportional to (1 - beta) / (1 - beta^n_c), normalised so sum_c w_c = C."""
    if beta == 0:
        return torch.ones_like(counts)
    # 1 - beta^n = -expm1(n log beta): exact in float32 even for beta 0.9999 and n ~ 1.
    weights = (1.0 - beta) / -torch.expm1(counts * math.log(beta))
    return weights * (weights.numel() / weights.sum())
