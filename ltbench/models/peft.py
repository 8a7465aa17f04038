"""Parameter-efficient fine-tuning (PEFT) of a frozen ViT image tower (open_clip's CLIP towers and
timm's VisionTransformer), as LIFT's code (shijxcs/LIFT, models/peft_vit.py and peft_modules.py)
and LIFT+'s (shijxcs/LIFT-plus, models/models.py and modules.py) build it.

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
- ``full`` / ``partial``: whole blocks train (all, or the last ``blocks``);
- ``aft`` (LIFT+'s "arbitrary fine-tuning"): a fixed random subset of the entries of the blocks'
  linear weights and biases trains (``aft_ratio`` of each tensor, at ``aft_loc``: the attention's
  qkv and output linears, the FFN's two, or all four), the rest stays frozen.

Adapters' up-projections and LoRA's B start at zero, so before training the tower computes what
the frozen one does. ``blocks`` (the code's ``partial``) limits every module family to the last
k blocks. The output is the CLS token after ``ln_post`` ([B, width], the code's feature: before
the projection), or after the projection with ``space='embed'`` (CLIP towers only). A timm ViT
(LIFT's and LIFT+'s ImageNet-21k towers) runs the same way: patch embedding, class token and
position embedding, the blocks, then its final norm's CLS token, as the codes' PEFT_ViT reads it.
"""
import math
from functools import reduce
from operator import mul
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ltbench.core.errors import UserError, unknown_name
from ltbench.core.seeding import generator as seeded_generator

PEFT_TYPES = ("adaptformer", "lora", "vpt_shallow", "vpt_deep", "bitfit", "ssf", "adapter", "full", "partial", "aft")
SSF_PLACES = ("attn", "mlp", "ln")
FEATURE_SPACES = ("width", "embed")
BOTTLENECK_TYPES = ("adaptformer", "adapter", "lora")
# The bottleneck's down-projection init: kaiming_normal (LIFT's peft_modules.py), kaiming_uniform
# (LIFT+'s modules.py Adapter, nn.Linear's own init); both with a = sqrt(5).
DOWN_INITS = ("kaiming_normal", "kaiming_uniform")
# Where VPT's prompt tokens go: after the sequence (LIFT's VPT) or right after the class token
# (LIFT+'s add_learnable_prompt); their init: uniform in +-sqrt(6 / (3 * patch area + width))
# (LIFT) or normal with std 0.02 (LIFT+).
VPT_POSITIONS = ("end", "after_cls")
VPT_INITS = ("uniform", "normal")
# aft_loc: the linears whose entries AFT opens (LIFT+'s add_aft: attn, mlp or all).
AFT_LOCS = ("attn", "mlp", "all")
AFT_TENSORS = {"attn": ("attn_in_weight", "attn_in_bias", "attn_out_weight", "attn_out_bias"),
               "mlp": ("mlp_in_weight", "mlp_in_bias", "mlp_out_weight", "mlp_out_bias")}
# LIFT+'s default aft_ratio (trainer.py build_tuner): as many trained entries as the classifier has,
# C * width, over the chosen linears of L blocks, whose entries it counts as width * (k * width + b)
# a block (an FFN 4x the width): attn 4, 4; mlp 8, 5; all 12, 9.
AFT_DEFAULT_COUNTS = {"attn": (4, 4), "mlp": (8, 5), "all": (12, 9)}


def bottleneck_width(num_classes: int, num_layers: int) -> int:
    """LIFT's default bottleneck / LoRA rank: 2^floor(log2(C / (2L))), at least 1
    (ImageNet-LT on ViT-B/16: 2^floor(log2(1000 / 24)) = 32)."""
    ratio = num_classes / (2 * num_layers)
    return 2 ** max(0, int(math.floor(math.log2(ratio)))) if ratio > 0 else 1


def aft_default_ratio(num_classes: int, blocks: int, width: int, loc: str) -> float:
    """LIFT+'s aft_ratio when none is given: C / (L * (k * width + b)) for aft_loc's (k, b)."""
    k, b = AFT_DEFAULT_COUNTS[loc]
    return num_classes / (blocks * (width * k + b))


def aft_indices(numel: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """The flat positions, ascending, of the int(numel * ratio) entries of a tensor that train:
    the first of a random permutation from ``generator`` (LIFT+'s generate_mask; ascending is
    the order its masked_select keeps them in)."""
    count = int(numel * ratio)
    return torch.randperm(numel, generator=generator, dtype=torch.int64)[:count].sort().values


class MaskedEntries(nn.Module):
    """Some entries of a frozen tensor, trained: ``values`` starts at those entries of the tensor
    (LIFT+'s MaskedParameter), and forward(tensor) is the tensor with them put in (out of place,
    so the frozen tensor is never written; the gradient reaches ``values`` only)."""

    def __init__(self, tensor: torch.Tensor, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(tensor.device), persistent=False)  # rebuilt from the seed
        self.values = nn.Parameter(tensor.detach().reshape(-1)[self.index].clone())

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        flat = tensor.reshape(-1).index_copy(0, self.index, self.values.to(tensor.dtype))
        return flat.view_as(tensor)


class Bottleneck(nn.Module):
    """LN -> down -> ReLU -> up (-> * scale): AdaptFormer's (scale given) or the sequential
    adapter's (no scale). Down: kaiming normal (a = sqrt 5; LIFT) or uniform (LIFT+), up and both
    biases zero."""

    def __init__(self, width: int, bottleneck: int, scale=None, down_init: str = "kaiming_normal"):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.down_proj = nn.Linear(width, bottleneck)
        self.up_proj = nn.Linear(bottleneck, width)
        init = nn.init.kaiming_normal_ if down_init == "kaiming_normal" else nn.init.kaiming_uniform_
        init(self.down_proj.weight, a=math.sqrt(5))
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
    """``length`` prompt tokens put into the ``seq_len`` tokens of the tower's input (an earlier
    block's prompts are dropped first): after them (position end, LIFT) or right after the class
    token (after_cls, LIFT+). Init: uniform in +-sqrt(6 / (3 * patch area + width)) (LIFT) or
    normal, std 0.02 (LIFT+)."""

    def __init__(self, length: int, seq_len: int, patch_size, width: int, position: str = "end",
                 init: str = "uniform"):
        super().__init__()
        self.seq_len, self.position = seq_len, position
        self.prompt = nn.Parameter(torch.empty(length, width))
        if init == "normal":
            nn.init.normal_(self.prompt, std=0.02)
        else:
            bound = math.sqrt(6.0 / float(3 * reduce(mul, patch_size, 1) + width))
            nn.init.uniform_(self.prompt, -bound, bound)

    def forward(self, x):
        prompt = self.prompt.to(x.dtype).expand(x.shape[0], -1, -1)
        if self.position == "end":
            return torch.cat([x[:, :self.seq_len], prompt], dim=1)
        return torch.cat([x[:, :1], prompt, x[:, x.shape[1] - (self.seq_len - 1):]], dim=1)


class SSF(nn.Module):
    """x * scale + shift per channel; scale ~ N(1, 0.02), shift ~ N(0, 0.02) (the code)."""

    def __init__(self, width: int):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(width).normal_(mean=1.0, std=0.02))
        self.shift = nn.Parameter(torch.empty(width).normal_(std=0.02))

    def forward(self, x):
        return x * self.scale + self.shift


def check_peft_options(kind, bottleneck=None, blocks=None, adaptformer_scale="learnable", vpt_length=10,
                       ssf_at=SSF_PLACES, space="width", down_init="kaiming_normal", vpt_position="end",
                       vpt_init="uniform", aft_ratio=None, aft_loc="all", aft_seed=None):
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
    for key, value, choices in (("peft.down_init", down_init, DOWN_INITS), ("peft.vpt_position", vpt_position,
                                VPT_POSITIONS), ("peft.vpt_init", vpt_init, VPT_INITS), ("peft.aft_loc", aft_loc,
                                                                                         AFT_LOCS)):
        if value not in choices:
            raise unknown_name(key, value, choices)


class _OpenClipTower:
    """How PeftViT reads an open_clip VisionTransformer (CLIP's image tower)."""

    def __init__(self, visual: nn.Module):
        self.visual = visual

    @property
    def blocks(self):
        return self.visual.transformer.resblocks

    @property
    def width(self) -> int:
        return int(self.visual.class_embedding.shape[-1])

    @property
    def seq_len(self) -> int:
        return int(self.visual.positional_embedding.shape[0])

    @property
    def patch_size(self):
        return self.visual.conv1.kernel_size

    def embed(self, images):
        visual = self.visual
        x = visual.conv1(images)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, W]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        return visual.ln_pre(x)

    def final_norm(self, cls_token):
        return self.visual.ln_post(cls_token)

    @staticmethod
    def parts(block):
        """(ln_1, qkv weight, qkv bias, out weight, out bias, ls_1, ln_2, fc1, act, fc2, ls_2, heads)."""
        attn, mlp = block.attn, block.mlp
        return (block.ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias,
                block.ls_1, block.ln_2, mlp.c_fc, mlp.gelu, mlp.c_proj, block.ls_2, attn.num_heads)

    @staticmethod
    def mlp_width(block) -> int:
        return int(block.mlp.c_fc.out_features)


class _TimmTower(_OpenClipTower):
    """How PeftViT reads a timm VisionTransformer (the codes' IN21K towers): patch embedding, class
    token, position embedding, norm_pre, the blocks, the final norm's class token."""

    @property
    def blocks(self):
        return self.visual.blocks

    @property
    def width(self) -> int:
        return int(self.visual.embed_dim)

    @property
    def seq_len(self) -> int:
        return int(self.visual.pos_embed.shape[1])

    @property
    def patch_size(self):
        return self.visual.patch_embed.proj.kernel_size

    def embed(self, images):
        model = self.visual
        x = model.patch_embed(images)  # [B, grid**2, W] ([B, grid, grid, W] for a dynamic_img_size model)
        if x.dim() == 4:  # at the model's own image size: its position embedding as it is
            x = x.flatten(1, 2)
        cls = model.cls_token.to(x.dtype).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + model.pos_embed.to(x.dtype)
        return model.norm_pre(x)

    def final_norm(self, cls_token):
        return self.visual.norm(cls_token)

    @staticmethod
    def parts(block):
        attn, mlp = block.attn, block.mlp
        return (block.norm1, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, block.ls1,
                block.norm2, mlp.fc1, mlp.act, mlp.fc2, block.ls2, attn.num_heads)

    @staticmethod
    def mlp_width(block) -> int:
        return int(block.mlp.fc1.out_features)


def _is_identity(module) -> bool:
    return module is None or isinstance(module, nn.Identity)


def _check_timm_tower(model: nn.Module, label: str):
    """PeftViT runs a timm ViT's blocks itself: only the plain ones (class token read, no register
    tokens, no extra norms inside attention or the FFN)."""
    if getattr(model, "cls_token", None) is None or getattr(model, "global_pool", "token") != "token" \
            or getattr(model, "attn_pool", None) is not None or not _is_identity(getattr(model, "fc_norm", None)):
        raise UserError(f"backbone '{label}': LIFT reads the class token after the final norm; this timm ViT pools "
                        f"with {getattr(model, 'global_pool', 'something else')!r}")
    if getattr(model, "reg_token", None) is not None or getattr(model, "no_embed_class", False):
        raise UserError(f"backbone '{label}': LIFT's PEFT modules take timm ViTs with one class token and a "
                        "position embedding over it")
    for block in model.blocks:
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        plain = (hasattr(attn, "qkv") and hasattr(attn, "proj") and hasattr(mlp, "fc1") and hasattr(mlp, "fc2")
                 and all(_is_identity(getattr(attn, name, None)) for name in ("q_norm", "k_norm", "norm"))
                 and _is_identity(getattr(mlp, "norm", None)) and attn.qkv.bias is not None)
        if not plain:
            raise UserError(f"backbone '{label}': its blocks are not timm's plain ViT blocks (qkv, proj, fc1, fc2, "
                            "no q/k norms) that LIFT's modules wrap")


def _tower_of(visual: nn.Module, label: str):
    """The reader of an open_clip or timm ViT tower; other towers are refused."""
    try:
        from timm.models.vision_transformer import VisionTransformer as TimmViT
    except ImportError:  # timm is a dependency; a broken install still reads CLIP towers
        TimmViT = ()
    if isinstance(visual, TimmViT):
        _check_timm_tower(visual, label)
        return _TimmTower(visual)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(visual, "conv1") or not hasattr(visual, "class_embedding"):
        raise UserError(f"backbone '{label}': LIFT's PEFT modules need a ViT image tower, not "
                        f"{type(visual).__name__}; use a ViT backbone such as ViT-B-16:openai, tiny or "
                        "timm:vit_base_patch16_224.augreg_in21k")
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        raise UserError(f"backbone '{label}': LIFT reads the CLS token; this ViT pools with "
                        f"{getattr(visual, 'pool_type', 'an attention pool')}")
    for block in blocks:
        attn = block.attn
        if not getattr(attn, "batch_first", False) or attn.in_proj_weight is None or hasattr(block, "ln_1_kv"):
            raise UserError(f"backbone '{label}': its ViT blocks are not open_clip's batch-first "
                            "self-attention blocks that LIFT's modules wrap")
    return _OpenClipTower(visual)


class PeftViT(nn.Module):
    """A frozen ViT (open_clip's or timm's) with one PEFT family; forward(images) -> features.

    Only the new modules (``self.tuner``) and, for bitfit / full / partial, the opened weights of
    the tower have requires_grad. ``trained_parameters`` counts them. ``seed``: the run's seed,
    from which aft's masks come (unless ``aft_seed`` fixes one seed for all, as LIFT+'s code).
    """

    def __init__(self, visual: nn.Module, kind: str, num_classes: int, bottleneck: Optional[int] = None,
                 blocks: Optional[int] = None, adaptformer_scale="learnable", vpt_length: int = 10,
                 ssf_at: Sequence[str] = SSF_PLACES, space: str = "width", label: str = "backbone",
                 down_init: str = "kaiming_normal", vpt_position: str = "end", vpt_init: str = "uniform",
                 aft_ratio: Optional[float] = None, aft_loc: str = "all", aft_seed: Optional[int] = None,
                 seed: int = 0):
        super().__init__()
        check_peft_options(kind, bottleneck, blocks, adaptformer_scale, vpt_length, ssf_at, space, down_init,
                           vpt_position, vpt_init, aft_ratio, aft_loc, aft_seed)
        self._tower = _tower_of(visual, label)
        if space == "embed" and getattr(visual, "proj", None) is None:
            raise UserError(f"backbone '{label}': head.space=embed reads CLIP's projected features; this tower has "
                            "no projection (use head.space=width)")
        self.visual, self.kind, self.space = visual, kind, space
        resblocks = self._tower.blocks
        layers = len(resblocks)
        width = self._tower.width
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
        self.aft_ratio = None

        visual.requires_grad_(False)
        per_block = {}
        if kind == "adaptformer":
            per_block = {i: nn.ModuleDict({"adaptformer": Bottleneck(width, self.bottleneck, adaptformer_scale,
                                                                     down_init)}) for i in tuned}
        elif kind == "adapter":
            per_block = {i: nn.ModuleDict({"adapter": Bottleneck(width, self.bottleneck, down_init=down_init)})
                         for i in tuned}
        elif kind == "lora":
            per_block = {i: nn.ModuleDict({"q": LoRA(width, self.bottleneck), "v": LoRA(width, self.bottleneck)})
                         for i in tuned}
        elif kind in ("vpt_shallow", "vpt_deep"):
            where = [0] if kind == "vpt_shallow" else tuned
            per_block = {i: nn.ModuleDict({"vpt": VPT(vpt_length, self._tower.seq_len, self._tower.patch_size, width,
                                                      vpt_position, vpt_init)}) for i in where}
        elif kind == "ssf":
            mlp_width = self._tower.mlp_width(resblocks[0])
            sizes = {"attn": {"attn_in": 3 * width, "attn_out": width}, "mlp": {"mlp_in": mlp_width, "mlp_out": width},
                     "ln": {"ln_1": width, "ln_2": width}}
            per_block = {i: nn.ModuleDict({name: SSF(size) for place in SSF_PLACES if place in self.ssf_at
                                           for name, size in sizes[place].items()}) for i in tuned}
        elif kind == "aft":
            self.aft_ratio = float(aft_ratio) if aft_ratio is not None else \
                aft_default_ratio(num_classes, len(tuned), width, aft_loc)
            if self.aft_ratio > 1:
                raise UserError(f"peft.aft_ratio=null: LIFT+'s default for {num_classes} classes on {len(tuned)} blocks "
                                f"of width {width} is {self.aft_ratio:.3g}, more than every entry; set peft.aft_ratio")
            names = AFT_TENSORS["attn"] + AFT_TENSORS["mlp"] if aft_loc == "all" else AFT_TENSORS[aft_loc]
            per_block = {i: nn.ModuleDict({name: self._masked(resblocks[i], i, name, aft_seed, seed) for name in names})
                         for i in tuned}
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

    def _masked(self, block, index: int, name: str, aft_seed: Optional[int], seed: int) -> MaskedEntries:
        """AFT's trained entries of one tensor of a block. aft_seed null: a generator of (run seed,
        block, tensor), so every tensor has its own mask; a number: LIFT+'s generate_mask, a
        generator seeded with it afresh for every tensor (tensors of one size share positions)."""
        _, qkv_w, qkv_b, out_w, out_b, _, _, fc1, _, fc2, _, _ = self._tower.parts(block)
        tensor = {"attn_in_weight": qkv_w, "attn_in_bias": qkv_b, "attn_out_weight": out_w, "attn_out_bias": out_b,
                  "mlp_in_weight": fc1.weight, "mlp_in_bias": fc1.bias, "mlp_out_weight": fc2.weight,
                  "mlp_out_bias": fc2.bias}[name]
        generator = torch.Generator().manual_seed(int(aft_seed)) if aft_seed is not None \
            else seeded_generator(seed, "peft", "aft", index, name)
        return MaskedEntries(tensor, aft_indices(tensor.numel(), self.aft_ratio, generator))

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

    def _block(self, block, x, modules):
        """A ViT block (open_clip's ResidualAttentionBlock or timm's Block, batch first), written out
        so that LoRA, SSF and AFT reach inside the attention and the FFN; equal to block(x) when no
        module is present (in eval mode: the block's dropouts are not run)."""
        if "vpt" in modules:
            x = modules["vpt"](x)
        ln_1, qkv_w, qkv_b, out_w, out_b, ls_1, ln_2, fc1, act, fc2, ls_2, heads = self._tower.parts(block)
        if "attn_in_weight" in modules or "mlp_in_weight" in modules:  # aft: the trained entries put in
            qkv_w, qkv_b, out_w, out_b = (modules[name](tensor) if name in modules else tensor for name, tensor in
                                          zip(AFT_TENSORS["attn"], (qkv_w, qkv_b, out_w, out_b)))
        ssf = modules if self.ssf_at else {}
        batch, tokens, width = x.shape
        h = ln_1(x)
        if "ln_1" in ssf:
            h = ssf["ln_1"](h)
        qkv = F.linear(h, qkv_w, qkv_b)
        if "q" in modules:
            q, k, v = qkv.chunk(3, dim=-1)
            qkv = torch.cat([q + modules["q"](h), k, v + modules["v"](h)], dim=-1)
        if "attn_in" in ssf:
            qkv = ssf["attn_in"](qkv)
        q, k, v = (part.reshape(batch, tokens, heads, width // heads).transpose(1, 2) for part in qkv.chunk(3, -1))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        out = F.linear(out, out_w, out_b)
        if "attn_out" in ssf:
            out = ssf["attn_out"](out)
        x = x + ls_1(out)
        h = ln_2(x)
        if "ln_2" in ssf:
            h = ssf["ln_2"](h)
        h = self._linear(fc1, h, modules, "mlp_in")
        if "mlp_in" in ssf:
            h = ssf["mlp_in"](h)
        h = self._linear(fc2, act(h), modules, "mlp_out")
        if "mlp_out" in ssf:
            h = ssf["mlp_out"](h)
        h = ls_2(h)
        if "adapter" in modules:
            h = h + modules["adapter"](h)
        if "adaptformer" in modules:
            h = h + modules["adaptformer"](x)  # parallel: from the block's FFN input, before ln_2
        return x + h

    @staticmethod
    def _linear(linear: nn.Linear, h, modules, name: str):
        """An FFN linear, with AFT's trained entries put into its weight and bias if it has them."""
        if f"{name}_weight" not in modules:
            return linear(h)
        return F.linear(h, modules[f"{name}_weight"](linear.weight), modules[f"{name}_bias"](linear.bias))

    def forward(self, images, modules: bool = True):
        """Features of ``images``; modules=False: the frozen tower's (LIFT's use_tuner=False)."""
        x = self._tower.embed(images)
        for index, block in enumerate(self._tower.blocks):
            x = self._block(block, x, self._modules_of(index) if modules else {})
        features = self._tower.final_norm(x[:, 0])
        return features if self.space == "width" else features @ self.visual.proj


def text_head_weights(text_features: torch.Tensor, visual: nn.Module, space: str) -> torch.Tensor:
    """[C, out_dim] L2-normalised class text features in the tower's feature space: in ``width``,
    projected back through the image projection (t proj^T, as the code's semantic-aware init)."""
    if space == "width":
        text_features = text_features.to(visual.proj.dtype) @ visual.proj.detach().t()
    return F.normalize(text_features.float(), dim=-1)
