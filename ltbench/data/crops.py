"""Test-time crops: torchvision's Resize(resize) + FiveCrop / TenCrop(size), by value.

``CropSpec`` gives every image K views [K, 3, size, size] (so a batch is [B, K, 3, size, size]):
the four corners and the centre of the image resized to ``resize`` on its shorter side (its
whole rectangle, as FiveCrop takes them), and for ``ten`` the same five of its mirror image.
Like TransformSpec it runs per image on PIL images (file splits) and per batch on uint8 arrays
(in-memory splits, with PIL's resampling; see pil_resize.py), and keys caches by value.
"""
from dataclasses import asdict, dataclass
from typing import Tuple

import numpy as np
import torch

from ltbench.core.errors import UserError, unknown_name
from ltbench.data.pil_resize import pil_resize, shortest_side_size
from ltbench.data.pixels import normalise, pixel_batch, to_rgb, unit_range
from ltbench.data.transforms import JpegDraft

CROP_SETS = ("five", "ten")


def crops(images: torch.Tensor, size: int, kind: str) -> torch.Tensor:
    """[B, C, H, W] -> [B, K, C, size, size]: torchvision's FiveCrop (top-left, top-right,
    bottom-left, bottom-right, centre) or TenCrop (those five, then the same of the mirror)."""
    if kind not in CROP_SETS:
        raise unknown_name("crop set", kind, CROP_SETS)
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise UserError(f"crops of {size} px do not fit {height}x{width} images")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), (top, left)]
    views = [images[..., y: y + size, x: x + size] for y, x in corners]
    if kind == "ten":
        mirrored = images.flip(-1)
        views += [mirrored[..., y: y + size, x: x + size] for y, x in corners]
    return torch.stack(views, dim=1)


class _StackedCrops:
    """PIL image -> [K, 3, size, size] in [0, 1] (a class, not a lambda: loader workers pickle it)."""

    def __init__(self, size: int, kind: str):
        self.size, self.kind = size, kind

    def __call__(self, image):
        from torchvision.transforms import functional as TF

        views = TF.five_crop(image, self.size) if self.kind == "five" else TF.ten_crop(image, self.size)
        return torch.stack([TF.to_tensor(view) for view in views])


@dataclass(frozen=True)
class CropSpec:
    """Test-time crops of an image: its shorter side resized to ``resize``, then ``crops`` (five
    or ten) crops of ``size`` x ``size``, normalised with ``mean`` and ``std``: [B, K, 3, S, S]."""

    size: int
    resize: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str = "bicubic"
    crops: str = "five"
    jpeg_draft: bool = False

    def __post_init__(self):
        if self.crops not in CROP_SETS:
            raise unknown_name("crop set", self.crops, CROP_SETS)
        if self.resize < self.size:
            raise UserError(f"crops of {self.size} px need images resized to at least that, not {self.resize}")

    @property
    def views(self) -> int:
        return 5 if self.crops == "five" else 10

    def fingerprint(self) -> dict:
        values = {key: value for key, value in asdict(self).items() if key != "jpeg_draft" or value}
        return {"kind": "crops", "resampler": "pil", **values}

    def pil_transform(self):
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        draft = [JpegDraft(self.resize)] if self.jpeg_draft else []
        return T.Compose(draft + [T.Resize(self.resize, interpolation=mode), to_rgb,
                                  _StackedCrops(self.size, self.crops), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, K, 3, size, size], normalised, on ``device``."""
        batch = pixel_batch(images, device)
        height, width = batch.shape[-2:]
        resized = shortest_side_size(height, width, self.resize)
        if resized != (height, width):
            batch = pil_resize(batch, torch.tensor([[0, 0, height, width]]), resized, self.interpolation)
        views = crops(batch, self.size, self.crops)
        return normalise(unit_range(views.flatten(0, 1)), self.mean, self.std).view(views.shape)
