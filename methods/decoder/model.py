"""Imbalance-VLM's lightweight decoder: a few transformer blocks over the frozen encoder's tokens.

Input: all tokens of the image encoder's last layer ([B, T, W], ``ClipModel.encode_tokens``;
token 0 is the CLS token). ``depth`` pre-norm blocks at the encoder width, the CLS token, a linear
head to the classes, as in the Imbalance-VLM code (timm Blocks, then ``classifier`` on token 0);
``final_norm=True`` adds a LayerNorm on the CLS token before the head (ltbench's former default,
not in the code). ``depth=0`` is a linear probe on the CLS token.
No positional embedding is added: the tokens already carry the encoder's.
"""
import torch
from torch import nn

from ltbench.api import UserError
from ltbench.api.heads import Float32Linear


class DecoderBlock(nn.Module):
    """x = x + attn(LN(x)); x = x + MLP(LN(x)), MLP = Linear -> GELU -> Linear."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TokenDecoder(nn.Module):
    """Tokens [B, T, width] -> logits [B, num_classes] (Imbalance-VLM: depth 3, 4 heads, mlp_ratio 0.5).

    ``features(tokens)`` is the CLS feature after the blocks (and the final LayerNorm, if any) and ``head`` the linear
    classifier on it, so a second stage (cRT, LWS, DisAlign) can freeze ``features`` and
    re-initialise or rescale ``head``.
    """

    def __init__(self, width: int, num_classes: int, depth: int = 3, heads: int = 4,
                 mlp_ratio: float = 0.5, final_norm: bool = False):
        super().__init__()
        width, num_classes, depth, heads = int(width), int(num_classes), int(depth), int(heads)
        if width < 1 or num_classes < 1:
            raise UserError(f"decoder: width ({width}) and num_classes ({num_classes}) must be positive")
        if depth < 0:
            raise UserError(f"decoder: depth must be 0 (a linear probe) or more, not {depth}")
        if depth > 0:
            if heads < 1 or width % heads:
                raise UserError(f"decoder: width {width} is not divisible by heads {heads}; "
                                f"choose heads among the divisors of {width}")
            if int(width * mlp_ratio) < 1:
                raise UserError(f"decoder: mlp_ratio {mlp_ratio} leaves no hidden units at width {width}")
        self.width, self.num_classes, self.depth = width, num_classes, depth
        self.heads, self.mlp_ratio = heads, float(mlp_ratio)
        self.blocks = nn.ModuleList([DecoderBlock(width, heads, mlp_ratio) for _ in range(depth)])
        # The code has no LayerNorm here: the CLS token goes from the last block to the head.
        self.norm = nn.LayerNorm(width) if final_norm else nn.Identity()
        self.head = Float32Linear(width, num_classes)  # logits in float32 under autocast too

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, width]: the CLS token after the blocks (LayerNorm-ed with final_norm)."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.width:
            raise ValueError(f"decoder expects tokens [B, T, {self.width}], got {tuple(tokens.shape)}")
        x = tokens.to(self.head.weight.dtype)  # cached tokens may be float16
        if self.depth == 0:
            x = x[:, :1]  # only the CLS token matters without attention
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens))

    @staticmethod
    def block_parameter_count(width: int, mlp_ratio: float = 0.5) -> int:
        """Parameters of one block: two LayerNorms, attention (QKV + out), the MLP."""
        hidden = int(width * mlp_ratio)
        return 2 * 2 * width + (4 * width * width + 4 * width) + (2 * width * hidden + hidden + width)
