"""Second-stage classifiers on a frozen first-stage model's features (decoupled training).

Each takes the stage-1 feature [B, D] and returns logits [B, C]; the stage-1 linear head they
start from is frozen (copied, so the stage-1 model stays as it was).
"""
import copy

import torch
from torch import nn

from ltbench.core.errors import unknown_name

SECOND_STAGES = ("none", "disalign", "crt", "lws")


def _frozen_copy(head: nn.Linear) -> nn.Linear:
    head = copy.deepcopy(head)
    head.requires_grad_(False)
    return head


class DisAlignHead(nn.Module):
    """Distribution Alignment (Zhang et al. CVPR 2021): a confidence s = sigmoid(w^T f + b) from a
    one-output linear layer, per-class alpha (init 1) and beta (init 0), and

        logits = s * (alpha * z + beta) + (1 - s) * z  =  z + s * ((alpha - 1) * z + beta),

    the form of the DisAlign code, which leaves the stage-1 logits z unchanged at initialisation.
    (METHODS.md writes (1 + s * alpha) * z + s * beta: the same family with alpha counted from 0.)
    """

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = _frozen_copy(head)
        self.confidence = nn.Linear(head.in_features, 1)
        self.alpha = nn.Parameter(torch.ones(head.out_features))
        self.beta = nn.Parameter(torch.zeros(head.out_features))

    def forward(self, features):
        logits = self.head(features)
        confidence = torch.sigmoid(self.confidence(features))
        return logits + confidence * ((self.alpha - 1.0) * logits + self.beta)


class LearnableWeightScaling(nn.Module):
    """LWS (Kang et al. ICLR 2020): logits = scale_c * z_c with one learnt scale per class (init 1)."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = _frozen_copy(head)
        self.scale = nn.Parameter(torch.ones(head.out_features))

    def forward(self, features):
        return self.head(features) * self.scale


def build_second_stage(kind: str, head: nn.Linear) -> nn.Module:
    """disalign / lws start from the stage-1 head; crt (classifier re-training) re-initialises it."""
    if kind == "disalign":
        return DisAlignHead(head)
    if kind == "lws":
        return LearnableWeightScaling(head)
    if kind == "crt":
        return nn.Linear(head.in_features, head.out_features)
    raise unknown_name("stage2.type", kind, SECOND_STAGES[1:])
