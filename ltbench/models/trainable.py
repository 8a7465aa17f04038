"""Which parameters of a CLIP model (or any backbone's image tower) train when it is fine-tuned.

``set_trainable`` chooses among whole encoders or their last blocks (BALLAD's phase A, both
towers); ``set_visual_trainable`` among the image tower's scopes (``VISUAL_SCOPES``: all, the last
blocks, norms, biases, none; clip_finetune, through ``Backbone.trainable``). A tower's residual
blocks are known for open_clip ViTs and CLIP's ModifiedResNet (``visual_blocks``).
"""
from typing import List, Tuple

from torch import nn

from ltbench.core.errors import UserError, unknown_name

TRAINABLE_PARTS = ("all", "visual", "text", "last_blocks")
VISUAL_SCOPES = ("all", "last_blocks", "norm", "bias", "norm_bias", "none")
NORM_LAYERS = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def _visual_parts(visual: nn.Module, key: str = "phase_a.trainable") -> Tuple[List[nn.Module], List[str]]:
    """(residual blocks in depth order, names of the stem modules/parameters before them);
    `key` names the setting in the error for an encoder whose blocks are unknown."""
    if hasattr(visual, "transformer") and hasattr(visual.transformer, "resblocks"):  # ViT
        return list(visual.transformer.resblocks), ["conv1", "class_embedding", "positional_embedding", "ln_pre"]
    if all(hasattr(visual, f"layer{i}") for i in range(1, 5)):  # CLIP's ModifiedResNet
        blocks = [block for i in range(1, 5) for block in getattr(visual, f"layer{i}")]
        return blocks, ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]
    other = "use all, visual or text" if key == "phase_a.trainable" else f"choose another {key}"
    raise UserError(f"{key}=last_blocks does not know the blocks of a {type(visual).__name__} "
                    f"image encoder; {other}")


def _text_parts(model: nn.Module) -> Tuple[List[nn.Module], List[str]]:
    if hasattr(model, "transformer") and hasattr(model, "token_embedding"):
        return list(model.transformer.resblocks), ["token_embedding", "positional_embedding"]
    raise UserError(f"phase_a.trainable=last_blocks does not know the blocks of {type(model).__name__}'s "
                    "text encoder; use all, visual or text")


def _open_last_blocks(owner: nn.Module, parameters, blocks, stem_names, last_blocks: int):
    """Train the last `last_blocks` blocks and everything after the blocks (final norm, pooling,
    projection); the stem and earlier blocks stay frozen."""
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    opened = {id(p) for block in blocks[len(blocks) - last_blocks:] if last_blocks > 0 for p in block.parameters()}
    stem = set()
    for name in stem_names:
        part = getattr(owner, name, None)
        if isinstance(part, nn.Parameter):
            stem.add(id(part))
        elif isinstance(part, nn.Module):
            stem.update(id(p) for p in part.parameters())
    for parameter in parameters:
        parameter.requires_grad_(id(parameter) in opened or (id(parameter) not in in_blocks and id(parameter) not in stem))


def set_trainable(model: nn.Module, parts: str, last_blocks: int = 0) -> int:
    """Choose what fine-tuning updates; returns the number of trainable parameters.

    all / visual / text: whole encoders. last_blocks: in both encoders, the last `last_blocks`
    residual blocks plus what follows them. CLIP's logit scale never trains (the temperature is
    fixed by config or taken from the model as it is).
    """
    if parts not in TRAINABLE_PARTS:
        raise unknown_name("phase_a.trainable", parts, TRAINABLE_PARTS)
    named = dict(model.named_parameters())
    visual = [p for name, p in named.items() if name.startswith("visual.")]
    text = [p for name, p in named.items() if not name.startswith(("visual.", "logit_"))]
    for parameter in named.values():
        parameter.requires_grad_(False)
    if parts in ("all", "visual"):
        for parameter in visual:
            parameter.requires_grad_(True)
    if parts in ("all", "text"):
        for parameter in text:
            parameter.requires_grad_(True)
    if parts == "last_blocks":
        if int(last_blocks) < 0:
            raise UserError(f"phase_a.last_blocks must be >= 0, got {last_blocks}")
        blocks, stem = _visual_parts(model.visual)
        _open_last_blocks(model.visual, visual, blocks, stem, int(last_blocks))
        blocks, stem = _text_parts(model)
        _open_last_blocks(model, text, blocks, stem, int(last_blocks))
    return sum(p.numel() for p in named.values() if p.requires_grad)


def visual_blocks(visual: nn.Module, key: str = "trainable.scope") -> List[nn.Module]:
    """The image encoder's residual blocks in depth order (ViT resblocks, or the bottlenecks of
    CLIP's ModifiedResNet layer1..layer4)."""
    return _visual_parts(visual, key)[0]


def _norm_parameters(module: nn.Module) -> List[nn.Parameter]:
    return [p for sub in module.modules() if isinstance(sub, NORM_LAYERS) for p in sub.parameters(recurse=False)]


def set_visual_trainable(visual: nn.Module, scope: str, last_blocks: int = 0, key: str = "trainable") -> int:
    """Choose which image-encoder parameters fine-tuning updates; returns how many train.

    all: every parameter; last_blocks: the last `last_blocks` residual blocks plus what follows
    them (final norm, attention pooling, projection), as set_trainable does for BALLAD, and
    nothing at all for 0 (0 blocks from the end: a frozen encoder); norm:
    the affine parameters of every LayerNorm / BatchNorm / GroupNorm; bias: every bias (BitFit);
    norm_bias: both; none: nothing (a head on the frozen encoder). The caller checks the
    settings first (see VISUAL_SCOPES) so that a bad one fails before any work.
    """
    if scope not in VISUAL_SCOPES:
        raise unknown_name(f"{key}.scope", scope, VISUAL_SCOPES)
    parameters = list(visual.parameters())
    visual.requires_grad_(scope == "all")
    if scope == "last_blocks" and int(last_blocks) > 0:
        blocks, stem = _visual_parts(visual, f"{key}.scope")
        _open_last_blocks(visual, parameters, blocks, stem, int(last_blocks))
    opened = []
    if scope in ("norm", "norm_bias"):
        opened += _norm_parameters(visual)
    if scope in ("bias", "norm_bias"):
        opened += [p for name, p in visual.named_parameters() if name.rsplit(".", 1)[-1].endswith("bias")]
    for parameter in opened:
        parameter.requires_grad_(True)
    return sum(p.numel() for p in parameters if p.requires_grad)


def freeze_batchnorm_statistics(module: nn.Module) -> None:
    """BatchNorm layers of `module` in eval mode: running statistics stay the pretrained ones
    (what BALLAD's code effectively ran); their affine parameters still train."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.eval()
