"""Residual feature adapters and the frozen text classifier they are read out by (BALLAD phase B)."""
import torch
import torch.nn.functional as F
from torch import nn

from ltbench.api import UserError, unknown_name
from ltbench.api.heads import float32_forward

ADAPTER_VARIANTS = ("relu", "linear")


class ResidualAdapter(nn.Module):
    """f* = ratio * g(f) + (1 - ratio) * f.

    variant 'relu' (BALLAD paper): g(f) = ReLU(W^T f + b);
    variant 'linear' (BALLAD public code): g(f) = W^T f, no bias, no ReLU.
    """

    def __init__(self, dim: int, ratio: float, variant: str = "relu"):
        super().__init__()
        if variant not in ADAPTER_VARIANTS:
            raise unknown_name("adapter variant", variant, ADAPTER_VARIANTS)
        if not 0.0 <= float(ratio) <= 1.0:
            raise UserError(f"adapter ratio (lambda) must be in [0, 1], got {ratio}")
        self.linear = nn.Linear(dim, dim, bias=variant == "relu")
        self.ratio = float(ratio)
        self.variant = variant

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        adapted = self.linear(features)
        if self.variant == "relu":
            adapted = F.relu(adapted)
        return self.ratio * adapted + (1.0 - self.ratio) * features


class TextCosineClassifier(nn.Module):
    """logits = scale * cos(adapter(f), t_c) against fixed class text features t_c [C, D]."""

    def __init__(self, adapter: nn.Module, text_features: torch.Tensor, scale: float):
        super().__init__()
        self.adapter = adapter
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1))
        self.scale = float(scale)

    @float32_forward  # a head: float32 under autocast too (api.heads.float32_forward)
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        adapted = F.normalize(self.adapter(features), dim=-1)
        return self.scale * adapted @ self.text_features.t()
