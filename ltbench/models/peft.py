"""Parameter-efficient fine-tuning (PEFT) of a frozen open_clip ViT image tower, as LIFT's code
(shijxcs/LIFT, models/peft_vit.py and peft_modules.py) builds it.

``PeftViT(visual, kind, ...)`` keeps the tower's weights frozen and adds one family of small
trained modules (or opens some of the tower's own weights), then runs the tower's blocks with its
own forward so that every module sits where LIFT puts it:

- ``adaptformer`` (LIFT's default): a parallel bottleneck on the FFN branch,
  x + mlp(ln_2(x)) + s * up(relu(down(LN(x)))), s a learned scalar (init 1);
- ``adapter``: a sequential bottleneck after the FFN, h + up(relu(down(LN(h)))), no scale;
- ``lora``: low-rank updates of the query and value projections, (x A B) / r, A kaiming, B 0;
- ``vpt_shallow`` / ``vpt_deep``: learned prompt tokens appended after the sequence, at the
  first block only / replaced at every block;
- ``ssf``: scale-and-shift after the qkv / attention-out / FFN linears and the two LayerNorms;
- ``bitfit``: every bias of the blocks trains (LayerNorm biases included, as in the code);
- ``full`` / ``partial``: whole blocks train (all, or the last ``blocks``).

Adapters' up-projections and LoRA's B start at zero, so before training the tower computes what
the frozen one does. ``blocks`` (the code's ``partial``) limits every module family to the last
k blocks. The output is the CLS token after ``ln_post`` ([B, width], the code's feature: before
the projection), or after the projection with ``space='embed'``.
"""
import math
from functools import reduce
from operator import mul
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core.errors import UserError, unknown_name

PEFT_TYPES = ("adaptformer", "lora", "vpt_shallow", "vpt_deep", "bitfit", "ssf", "adapter", "full", "partial")
SSF_PLACES = ("attn", "mlp", "ln")
FEATURE_SPACES = ("width", "embed")
BOTTLENECK_TYPES = ("adaptformer", "adapter", "lora")


def bottleneck_width(num_classes: int, num_layers: int) -> int:
    """LIFT's default bottleneck / LoRA rank: 2^floor(log2(C / (2L))), at least 1
    (ImageNet-LT on ViT-B/16: 2^floor(log2(1000 / 24)) = 32)."""
    ratio = num_classes / (2 * num_layers)
    return 2 ** max(0, int(math.floor(math.log2(ratio)))) if ratio > 0 else 1


class Bottleneck(nn.Module):
    """LN -> down -> ReLU -> up (-> * scale): AdaptFormer's (scale given) or the sequential
    adapter's (no scale). Down: kaiming normal (a = sqrt 5), up and both biases zero."""

    def __init__(self, width: int, bottleneck: int, scale=None):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.down_proj = nn.Linear(width, bottleneck)
        self.up_proj = nn.Linear(bottleneck, width)
        nn.init.kaiming_normal_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up_proj.weight)
        nn.init.zeros_(self.down_proj.bias)
        nn.init.zeros_(self.up_proj.bias)
        # "learnable": a trained scalar starting at 1 (the code); a number: a fixed scale.
        if scale == "learnable":
            self.scale = nn.Parameter(torch.ones(1))
        else:
            self.register_buffer("scale", None if scale is None else torch.tensor(float(scale)), persistent=False)

    def forward(self, x):
        x = self.up_proj(F.relu(self.down_proj(self.ln(x))))
        return x if self.scale is None else x * self.scale


class LoRA(nn.Module):
    """x -> (x A B) / r, A [in, r] kaiming uniform (a = sqrt 5), B [r, out] zero (the code)."""

    def __init__(self, width: int, rank: int):
        super().__init__()
        self.lora_A = nn.Parameter(torch.zeros(width, rank))
        self.lora_B = nn.Parameter(torch.zeros(rank, width))
        self.scaling = 1.0 / rank
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        return (x @ self.lora_A @ self.lora_B) * self.scaling


class VPT(nn.Module):
    """``length`` prompt tokens appended after the first ``seq_len`` tokens (earlier prompts are
    cut off first); uniform init in +-sqrt(6 / (3 * patch area + width)) as in the code."""

    def __init__(self, length: int, seq_len: int, patch_size, width: int):
        super().__init__()
        self.seq_len = seq_len
        self.prompt = nn.Parameter(torch.empty(length, width))
        bound = math.sqrt(6.0 / float(3 * reduce(mul, patch_size, 1) + width))
        nn.init.uniform_(self.prompt, -bound, bound)

    def forward(self, x):
        x = x[:, :self.seq_len]
        return torch.cat([x, self.prompt.to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)


class SSF(nn.Module):
    """x * scale + shift per channel; scale ~ N(1, 0.02), shift ~ N(0, 0.02) (the code)."""

    def __init__(self, width: int):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(width).normal_(mean=1.0, std=0.02))
        self.shift = nn.Parameter(torch.empty(width).normal_(std=0.02))

    def forward(self, x):
        return x * self.scale + self.shift


def check_peft_options(kind, bottleneck=None, blocks=None, adaptformer_scale="learnable", vpt_length=10,
                       ssf_at=SSF_PLACES, space="width"):
    """The PEFT options' rules between them and their names, as one-line errors before a model is
    built (their types and ranges: the lift method's declared options; the tower's depth is
    checked against ``blocks`` when it is known, in PeftViT)."""
    if kind not in PEFT_TYPES:
        raise unknown_name("peft.type", kind, PEFT_TYPES)
    if space not in FEATURE_SPACES:
        raise unknown_name("head.space", space, FEATURE_SPACES)
    if blocks is None and kind == "partial":
        raise UserError("peft.type=partial fine-tunes the last peft.blocks blocks: set peft.blocks=K (K >= 1)")
    unknown = [place for place in ssf_at if place not in SSF_PLACES]
    if unknown:
        raise UserError(f"peft.ssf_at={ssf_at!r}: expected a non-empty list of {', '.join(SSF_PLACES)}")


def _check_tower(visual: nn.Module, label: str):
    """PeftViT runs open_clip VisionTransformer blocks itself: refuse towers it would run wrongly."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(visual, "conv1") or not hasattr(visual, "class_embedding"):
        raise UserError(f"backbone '{label}': LIFT's PEFT modules need a ViT image tower, not "
                        f"{type(visual).__name__}; use a ViT backbone such as ViT-B-16:openai or tiny")
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise UserError(f"backbone '{label}': LIFT reads the CLS token; this ViT pools with "
                        f"{getattr(visual, 'pool_type', 'an attention pool')}")
    for block in blocks:
        attn = block.attn
        if not getattr(attn, "batch_first", False) or attn.in_proj_weight is None or hasattr(block, "ln_1_kv"):
            raise UserError(f"backbone '{label}': its ViT blocks are not open_clip's batch-first "
                            "self-attention blocks that LIFT's modules wrap")


class PeftViT(nn.Module):
    """A frozen open_clip VisionTransformer with one PEFT family; forward(images) -> features.

    Only the new modules (``self.tuner``) and, for bitfit / full / partial, the opened weights of
    the tower have requires_grad. ``trained_parameters`` counts them.
    """

    def __init__(self, visual: nn.Module, kind: str, num_classes: int, bottleneck: Optional[int] = None,
                 blocks: Optional[int] = None, adaptformer_scale="learnable", vpt_length: int = 10,
                 ssf_at: Sequence[str] = SSF_PLACES, space: str = "width", label: str = "backbone"):
        super().__init__()
        check_peft_options(kind, bottleneck, blocks, adaptformer_scale, vpt_length, ssf_at, space)
        _check_tower(visual, label)
        self.visual, self.kind, self.space = visual, kind, space
        resblocks = visual.transformer.resblocks
        layers = len(resblocks)
        width = int(visual.class_embedding.shape[-1])
        self.layers, self.width = layers, width
        if blocks is not None and blocks > layers:
            raise UserError(f"peft.blocks={blocks}: backbone '{label}' has {layers} blocks; choose 0 to {layers} "
                            "or null (every block)")
        start = 0 if blocks is None else layers - blocks
        self.start = start
        tuned = range(start, layers)
        self.bottleneck = None
        if kind in BOTTLENECK_TYPES:
            self.bottleneck = bottleneck_width(num_classes, layers) if bottleneck is None else int(bottleneck)
        self.ssf_at = tuple(ssf_at) if kind == "ssf" else ()

        visual.requires_grad_(False)
        per_block = {}
        if kind == "adaptformer":
            per_block = {i: nn.ModuleDict({"adaptformer": Bottleneck(width, self.bottleneck, adaptformer_scale)})
                         for i in tuned}
        elif kind == "adapter":
            per_block = {i: nn.ModuleDict({"adapter": Bottleneck(width, self.bottleneck)}) for i in tuned}
        elif kind == "lora":
            per_block = {i: nn.ModuleDict({"q": LoRA(width, self.bottleneck), "v": LoRA(width, self.bottleneck)})
                         for i in tuned}
        elif kind in ("vpt_shallow", "vpt_deep"):
            seq_len = int(visual.positional_embedding.shape[0])
            where = [0] if kind == "vpt_shallow" else tuned
            per_block = {i: nn.ModuleDict({"vpt": VPT(vpt_length, seq_len, visual.conv1.kernel_size, width)})
                         for i in where}
        elif kind == "ssf":
            mlp_width = int(resblocks[0].mlp.c_fc.out_features)
            sizes = {"attn": {"attn_in": 3 * width, "attn_out": width}, "mlp": {"mlp_in": mlp_width, "mlp_out": width},
                     "ln": {"ln_1": width, "ln_2": width}}
            per_block = {i: nn.ModuleDict({name: SSF(size) for place in SSF_PLACES if place in self.ssf_at
                                           for name, size in sizes[place].items()}) for i in tuned}
        elif kind == "bitfit":
            for i in tuned:
                for name, parameter in resblocks[i].named_parameters():
                    if name.endswith("bias"):
                        parameter.requires_grad_(True)
        else:  # full, partial
            for i in tuned:
                resblocks[i].requires_grad_(True)
        # Keyed by block index (ModuleDict keys are strings).
        self.tuner = nn.ModuleDict({str(i): modules for i, modules in per_block.items()})

    @property
    def trained_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def tuned_blocks(self) -> int:
        """Blocks with modules (vpt_shallow: the first only) or with opened weights."""
        return len(self.tuner) if len(self.tuner) else self.layers - self.start

    @property
    def out_dim(self) -> int:
        return self.width if self.space == "width" else int(self.visual.proj.shape[1])

    def _modules_of(self, index: int):
        return self.tuner[str(index)] if str(index) in self.tuner else {}

    def _embed(self, images):
        visual = self.visual
        x = visual.conv1(images)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, W]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        return visual.ln_pre(x)

    def _block(self, block, x, modules):
        """open_clip's ResidualAttentionBlock (batch first), written out so that LoRA and SSF
        reach inside the attention; equal to block(x) when no module is present."""
        if "vpt" in modules:
            x = modules["vpt"](x)
        ssf = modules if self.ssf_at else {}
        attn = block.attn
        batch, tokens, width = x.shape
        heads = attn.num_heads
        h = block.ln_1(x)
        if "ln_1" in ssf:
            h = ssf["ln_1"](h)
        qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)
        if "q" in modules:
            q, k, v = qkv.chunk(3, dim=-1)
            qkv = torch.cat([q + modules["q"](h), k, v + modules["v"](h)], dim=-1)
        if "attn_in" in ssf:
            qkv = ssf["attn_in"](qkv)
        q, k, v = (part.reshape(batch, tokens, heads, width // heads).transpose(1, 2) for part in qkv.chunk(3, -1))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        out = F.linear(out, attn.out_proj.weight, attn.out_proj.bias)
        if "attn_out" in ssf:
            out = ssf["attn_out"](out)
        x = x + block.ls_1(out)
        mlp = block.mlp
        h = block.ln_2(x)
        if "ln_2" in ssf:
            h = ssf["ln_2"](h)
        h = mlp.c_fc(h)
        if "mlp_in" in ssf:
            h = ssf["mlp_in"](h)
        h = mlp.c_proj(mlp.gelu(h))
        if "mlp_out" in ssf:
            h = ssf["mlp_out"](h)
        h = block.ls_2(h)
        if "adapter" in modules:
            h = h + modules["adapter"](h)
        if "adaptformer" in modules:
            h = h + modules["adaptformer"](x)  # parallel: from the block's FFN input, before ln_2
        return x + h

    def forward(self, images):
        x = self._embed(images)
        for index, block in enumerate(self.visual.transformer.resblocks):
            x = self._block(block, x, self._modules_of(index))
        features = self.visual.ln_post(x[:, 0])
        return features if self.space == "width" else features @ self.visual.proj


def text_head_weights(text_features: torch.Tensor, visual: nn.Module, space: str) -> torch.Tensor:
    """[C, out_dim] L2-normalised class text features in the tower's feature space: in ``width``,
    projected back through the image projection (t proj^T, as the code's semantic-aware init)."""
    if space == "width":
        text_features = text_features.to(visual.proj.dtype) @ visual.proj.detach().t()
    return F.normalize(text_features.float(), dim=-1)
