"""Classification heads on (L2-normalised) image features."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core.errors import unknown_name

HEADS = ("linear", "cosine")


class CosineHead(nn.Module):
    """logits = scale * cos(f, w_c): a classifier whose rows live on the unit sphere, like text features.

    learn_scale: the scale trains too, as log(scale) (CLIP's own temperature parametrisation),
    so it stays positive."""

    def __init__(self, in_features: int, num_classes: int, scale: float, learn_scale: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, in_features) * in_features ** -0.5)
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(float(scale))))
        else:
            self.scale = float(scale)

    def forward(self, features):
        scale = self.log_scale.exp() if hasattr(self, "log_scale") else self.scale
        return scale * F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t()


def build_head(kind: str, in_features: int, num_classes: int, scale: float, text_classifier=None,
               learn_scale: bool = False) -> nn.Module:
    """A linear or cosine head; with `text_classifier` [C, D] it starts as the zero-shot classifier
    (linear: weight = scale * t_c, bias 0; cosine: w_c = t_c). learn_scale: the cosine head's
    scale trains (a linear head's weights carry their own scale)."""
    if kind == "linear":
        head = nn.Linear(in_features, num_classes)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(scale * text_classifier)
                head.bias.zero_()
        return head
    if kind == "cosine":
        head = CosineHead(in_features, num_classes, scale, learn_scale)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(text_classifier)
        return head
    raise unknown_name("head type", kind, HEADS)
