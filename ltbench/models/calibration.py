"""Second-stage classifiers on a frozen first-stage model's features (decoupled training).

Each takes the stage-1 feature [B, D] and returns logits [B, C], computed in float32 under
autocast too (models/heads.py); the stage-1 linear head they start from is frozen (copied, so
the stage-1 model stays as it was).
"""
import copy

import numpy as np
import torch
from torch import nn

from ltbench.core import registry
from ltbench.core.chunks import row_chunks
from ltbench.core.errors import unknown_name
from ltbench.core.registry import SECOND_STAGES
from ltbench.models.heads import Float32Linear, float32_forward

# The values of a decoder's stage2.type: no second stage, the trained heads registered below,
# and tau-normalisation (no training).
STAGE2_TYPES = ("none", "disalign", "crt", "lws", "marc", "taunorm")


def _frozen_copy(head: nn.Linear) -> nn.Linear:
    head = copy.deepcopy(head)
    if type(head) is nn.Linear:
        head = Float32Linear.sharing(head)
    head.requires_grad_(False)
    return head


DISALIGN_FORMS = ("classification", "segmentation")


class DisAlignHead(nn.Module):
    """Distribution Alignment (Zhang et al. CVPR 2021): a confidence s = sigmoid(w^T f + b) from a
    one-output linear layer, per-class alpha (init 1) and beta (init 0) on the frozen logits z.

    form "classification" (DisAlign's classification code, cvpods ``DisAlignLinear``, and
    Imbalance-VLM's ``DisAlign_Net``): logits = (1 + s * alpha) * z + s * beta, which starts at
    (1 + s) * z, not at z. form "segmentation" (DisAlign's segmentation head):
    logits = z + s * ((alpha - 1) * z + beta), which starts at z.
    confidence_weight: None keeps PyTorch's default init of w (Imbalance-VLM); cvpods sets every
    weight of w to 0.1. b keeps PyTorch's default init in both codes.
    alpha and beta are [1, C] as Imbalance-VLM's logit_scale / logit_bias: with `weight_decay_1d:
    false` they are decayed like its matrices, and only the confidence bias is not.
    """

    def __init__(self, head: nn.Linear, form: str = "classification", confidence_weight=None):
        super().__init__()
        if form not in DISALIGN_FORMS:
            raise unknown_name("stage2.disalign_form", form, DISALIGN_FORMS)
        self.head, self.form = _frozen_copy(head), form
        self.confidence = nn.Linear(head.in_features, 1)
        if confidence_weight is not None:
            nn.init.constant_(self.confidence.weight, float(confidence_weight))
        self.alpha = nn.Parameter(torch.ones(1, head.out_features))
        self.beta = nn.Parameter(torch.zeros(1, head.out_features))

    @float32_forward
    def forward(self, features):
        logits = self.head(features)
        confidence = torch.sigmoid(self.confidence(features))
        if self.form == "classification":
            return (1.0 + confidence * self.alpha) * logits + confidence * self.beta
        return logits + confidence * ((self.alpha - 1.0) * logits + self.beta)


class MarcHead(nn.Module):
    """MARC (Wang et al. 2022): z'_c = omega_c * z_c + beta_c * ||W_c||, with omega (init 1) and beta
    (init 0) per class on the frozen head (Imbalance-VLM's ``MARC_Net``: the same init), so it
    starts at the stage-1 logits; ||W_c|| is the norm of the frozen head's row c. omega and beta
    are [1, C] as in both codes (MARC_Net, robustlearn's MARCLinear), so the optimiser decays them
    as theirs do, also with `weight_decay_1d: false` (which exempts 1-D parameters only)."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = _frozen_copy(head)
        self.register_buffer("weight_norm", self.head.weight.detach().norm(dim=1))
        self.omega = nn.Parameter(torch.ones(1, head.out_features))
        self.beta = nn.Parameter(torch.zeros(1, head.out_features))

    @float32_forward
    def forward(self, features):
        return self.omega * self.head(features) + self.beta * self.weight_norm


def tau_normalised(head: nn.Linear, tau: float) -> nn.Linear:
    """tau-normalisation (Kang et al. ICLR 2020): a bias-free copy of ``head`` with rows
    W_c / ||W_c||^tau (tau 0: the weights unchanged, the bias dropped; tau 1: unit-norm rows)."""
    weight = head.weight.detach()
    normalised = Float32Linear(head.in_features, head.out_features, bias=False).to(weight.device, weight.dtype)
    with torch.no_grad():
        normalised.weight.copy_(weight / weight.norm(dim=1, keepdim=True).pow(float(tau)))
    return normalised.requires_grad_(False)


class LearnableWeightScaling(nn.Module):
    """LWS (Kang et al. ICLR 2020): logits = scale_c * z_c with one learnt scale per class (init 1).
    The scale is 1-D as Imbalance-VLM's Lws_Net.scales, so `weight_decay_1d: false` exempts it
    from decay as its optimiser does."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = _frozen_copy(head)
        self.scale = nn.Parameter(torch.ones(head.out_features))

    @float32_forward
    def forward(self, features):
        return self.head(features) * self.scale


def tau_normalised_logits(logits: np.ndarray, weight: np.ndarray, bias: np.ndarray, tau: float) -> np.ndarray:
    """The logits of ``tau_normalised(head, tau)`` from the head's own logits z = W x + b, without
    its input x: W_c x / ||W_c||^tau = (z_c - b_c) / ||W_c||^tau. So a finished run's saved logits
    and its saved head weights are enough (no features are encoded again)."""
    scale = np.linalg.norm(np.asarray(weight, dtype=np.float64), axis=1) ** float(tau)
    bias = np.asarray(bias, dtype=np.float64)
    logits = np.asarray(logits)
    out = np.empty(logits.shape, dtype=np.float32)
    for rows in row_chunks(*logits.shape):  # no float64 copy of all [N, C] logits
        out[rows] = (logits[rows].astype(np.float64) - bias) / scale
    return out


def select_on_grid(grid, top1_of):
    """(value, top-1 % of each grid value): the grid value whose ``top1_of(value)`` is highest (the
    first of equals, so ties go to the smaller value of a rising grid). The one selection rule of
    tau-normalisation and of the post-hoc adjustments."""
    accuracies = [float(top1_of(value)) for value in grid]
    return float(grid[accuracies.index(max(accuracies))]), accuracies


@torch.no_grad()
def select_tau(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, grid):
    """(tau, top-1 % of each grid value): the grid value whose tau-normalised head classifies
    (features, labels) best (the first of equals, so ties go to the smaller tau of a rising grid)."""
    return select_on_grid(grid, lambda tau: float(
        (tau_normalised(head, tau)(features).argmax(1) == labels).float().mean()) * 100)


@SECOND_STAGES.register_module(name="disalign")
def _disalign(head: nn.Linear, disalign_form: str = "classification", disalign_confidence_weight=None):
    return DisAlignHead(head, disalign_form, disalign_confidence_weight)


@SECOND_STAGES.register_module(name="lws")
def _lws(head: nn.Linear):
    return LearnableWeightScaling(head)


@SECOND_STAGES.register_module(name="marc")
def _marc(head: nn.Linear):
    return MarcHead(head)


@SECOND_STAGES.register_module(name="crt")
def _crt(head: nn.Linear):
    """Classifier re-training: a new head of the same shape, randomly initialised."""
    return Float32Linear(head.in_features, head.out_features)


def build_second_stage(kind: str, head: nn.Linear, **options) -> nn.Module:
    """The trainable second stage registered as `kind` (disalign / lws / marc start from the
    stage-1 head; crt re-initialises it), its options checked strictly. (taunorm is not trained:
    see tau_normalised.)"""
    _, build, options = registry.resolve_spec(SECOND_STAGES, {"type": kind, **options}, reserved=("head",))
    return build(head, **options)
