"""LIFT's image pipeline: its eval resize, and test-time ensembling (TTE) over crops.

The code evaluates with Resize(size * 8 // 7) + CenterCrop(size) (torchvision, bilinear) and,
with TTE, Resize(size + expand) + FiveCrop / TenCrop(size), averaging the crops' logits.
"""
from dataclasses import replace

import torch

from ltbench.api import INTERPOLATIONS, TransformSpec, UserError, unknown_name

EVAL_RESIZES = ("code", "model")
TTE_CROPS = ("five", "ten")


def check_preprocess(preprocess: dict, tte: dict):
    """The pipeline's options, before any work."""
    if preprocess["interpolation"] not in INTERPOLATIONS:
        raise unknown_name("preprocess.interpolation", preprocess["interpolation"], INTERPOLATIONS)
    if preprocess["eval_resize"] not in EVAL_RESIZES:
        raise unknown_name("preprocess.eval_resize", preprocess["eval_resize"], EVAL_RESIZES)
    if not isinstance(tte["enabled"], bool):
        raise UserError(f"tte.enabled={tte['enabled']!r}: expected true or false")
    if tte["crops"] not in TTE_CROPS:
        raise unknown_name("tte.crops", tte["crops"], TTE_CROPS)
    expand = tte["expand"]
    if isinstance(expand, bool) or not isinstance(expand, int) or expand < 0:
        raise UserError(f"tte.expand={expand!r}: expected a whole number of pixels >= 0 (the code: 24)")


def eval_transform(model_spec: TransformSpec, preprocess: dict) -> TransformSpec:
    """The eval transform at the backbone's size, mean and std: the code's 8/7 resize and its
    interpolation, or (eval_resize=model) the backbone's own transform."""
    if preprocess["eval_resize"] == "model":
        return model_spec
    return replace(model_spec, resize=model_spec.size * 8 // 7, resize_mode="shortest",
                   interpolation=preprocess["interpolation"])


def tte_transform(spec: TransformSpec, tte: dict) -> TransformSpec:
    """Shorter side to size + expand, then the centre square (cropped further by crops()).

    For non-square images the code's corner crops come from the whole resized rectangle; here
    from its centre square [ours]: one batch shape for every image. Square images (CIFAR,
    digits) get the code's crops exactly."""
    side = spec.size + int(tte["expand"])
    return replace(spec, size=side, resize=side, resize_mode="shortest")


def crops(images: torch.Tensor, size: int, kind: str) -> torch.Tensor:
    """[B, C, H, W] -> [B, K, C, size, size]: torchvision's FiveCrop (top-left, top-right,
    bottom-left, bottom-right, centre) or TenCrop (those five, then the same of the mirror)."""
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise UserError(f"TTE crops of {size} px do not fit {height}x{width} images")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), (top, left)]
    five = [images[..., y: y + size, x: x + size] for y, x in corners]
    if kind == "ten":
        mirrored = images.flip(-1)
        five += [mirrored[..., y: y + size, x: x + size] for y, x in corners]
    return torch.stack(five, dim=1)


def ensemble_logits(model, images: torch.Tensor, size: int, kind: str) -> torch.Tensor:
    """The mean of the crops' logits (the code averages logits, not probabilities). One model
    call per crop position over the whole batch: the memory of a plain eval batch, not K times it."""
    views = crops(images, size, kind)
    return torch.stack([model(views[:, k]).float() for k in range(views.shape[1])]).mean(dim=0)
