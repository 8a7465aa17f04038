"""LIFT's image pipeline: its eval resize, and test-time ensembling (TTE) over crops.

LIFT's code evaluates with Resize(size * 8 // 7) + CenterCrop(size) (torchvision, bilinear) and,
with TTE, Resize(size + expand) + FiveCrop / TenCrop(size) (ltbench/data/crops.py), averaging
the crops' logits. LIFT+'s resizes to size + size // 7 (the same number of pixels) with bicubic
interpolation (preprocess.interpolation), and with TTE to size + 24, five crops.
"""
from dataclasses import replace

import torch

from ltbench.api.images import CropSpec, TransformSpec


def eval_transform(model_spec: TransformSpec, preprocess: dict) -> TransformSpec:
    """The eval transform at the backbone's size, mean and std: the code's 8/7 resize and its
    interpolation, or (eval_resize=model) the backbone's own transform."""
    if preprocess["eval_resize"] == "model":
        return model_spec
    return replace(model_spec, resize=model_spec.size * 8 // 7, resize_mode="shortest",
                   interpolation=preprocess["interpolation"])


def plain_transform(model_spec: TransformSpec, preprocess: dict) -> TransformSpec:
    """The codes' transform_plain, which their class-mean classifier init reads the training images
    through: shorter side to the input size (no 8/7), centre crop, at preprocess.interpolation."""
    return replace(model_spec, resize=None, resize_mode="shortest", interpolation=preprocess["interpolation"])


def tte_transform(spec: TransformSpec, tte: dict) -> CropSpec:
    """The code's TTE views: shorter side to size + expand, then five (or ten) crops of size
    from the whole resized image, at the eval transform's interpolation, mean and std."""
    return CropSpec(size=spec.size, resize=spec.size + int(tte["expand"]), mean=spec.mean, std=spec.std,
                    interpolation=spec.interpolation, crops=tte["crops"], jpeg_draft=spec.jpeg_draft)


def ensemble_logits(model, views: torch.Tensor) -> torch.Tensor:
    """[B, K, 3, S, S] views -> the mean of their logits (the code averages logits, not
    probabilities). One model call per crop position over the whole batch: the memory of a
    plain eval batch, not K times it."""
    return torch.stack([model(views[:, k]).float() for k in range(views.shape[1])]).mean(dim=0)
