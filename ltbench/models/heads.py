"""Classification heads on (L2-normalised) image features."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core.errors import unknown_name

HEADS = ("linear", "cosine")
RANDOM_ROWS = ("gaussian", "uniform_unit")


def random_rows(num_classes: int, in_features: int, kind: str = "gaussian") -> torch.Tensor:
    """[C, D] random classifier rows from torch's global RNG. gaussian: N(0, 1 / D) entries (rows
    of length about 1), ltbench's; uniform_unit: LIFT's _Classifier (models/classifiers.py),
    uniform(-1, 1) entries with each row renormalised to length 1, by the same torch calls."""
    if kind == "gaussian":
        return torch.randn(num_classes, in_features) * in_features ** -0.5
    if kind == "uniform_unit":
        return torch.empty(num_classes, in_features).uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)
    raise unknown_name("random head rows", kind, RANDOM_ROWS)


class CosineHead(nn.Module):
    """logits = scale * cos(f, w_c): a classifier whose rows live on the unit sphere, like text features.

    learn_scale: the scale trains too, as log(scale) (CLIP's own temperature parametrisation),
    so it stays positive. rows: how the rows start (random_rows)."""

    def __init__(self, in_features: int, num_classes: int, scale: float, learn_scale: bool = False,
                 rows: str = "gaussian"):
        super().__init__()
        self.weight = nn.Parameter(random_rows(num_classes, in_features, rows))
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(math.log(float(scale))))
        else:
            self.scale = float(scale)

    def forward(self, features):
        scale = self.log_scale.exp() if hasattr(self, "log_scale") else self.scale
        return scale * F.normalize(features, dim=-1) @ F.normalize(self.weight, dim=-1).t()


def build_head(kind: str, in_features: int, num_classes: int, scale: float, text_classifier=None,
               learn_scale: bool = False, random_init: str = "gaussian") -> nn.Module:
    """A linear or cosine head; with `text_classifier` [C, D] it starts as the zero-shot classifier
    (linear: weight = scale * t_c, bias 0; cosine: w_c = t_c). learn_scale: the cosine head's
    scale trains (a linear head's weights carry their own scale). random_init: the cosine head's
    rows without a text classifier (random_rows; a linear head keeps PyTorch's init)."""
    if kind == "linear":
        head = nn.Linear(in_features, num_classes)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(scale * text_classifier)
                head.bias.zero_()
        return head
    if kind == "cosine":
        head = CosineHead(in_features, num_classes, scale, learn_scale,
                          rows="gaussian" if text_classifier is not None else random_init)
        if text_classifier is not None:
            with torch.no_grad():
                head.weight.copy_(text_classifier)
        return head
    raise unknown_name("head type", kind, HEADS)
