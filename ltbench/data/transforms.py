"""Evaluation transforms described by value, so that caches can be keyed by them.

The same spec runs two ways: per image on PIL images (files decoded in loader workers) and per
batch on uint8 tensors (in-memory datasets, no Python loop over images). The two agree up to the
bicubic kernel (PIL uses a = -0.5, torch a = -0.75), so one split always takes one of the two.
"""
from dataclasses import asdict, dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def _to_rgb(image):
    # A named function, not a lambda: loader workers may need to pickle the transform.
    return image.convert("RGB")


@dataclass(frozen=True)
class TransformSpec:
    """Resize the shorter side to ``size``, centre-crop ``size`` x ``size``, scale to [0, 1], normalise."""

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str = "bicubic"

    def fingerprint(self) -> dict:
        return {"kind": "eval", **asdict(self)}

    def pil_transform(self):
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        return T.Compose([
            T.Resize(self.size, interpolation=mode),
            T.CenterCrop(self.size),
            _to_rgb,
            T.ToTensor(),
            T.Normalize(self.mean, self.std),
        ])

    def apply_batch(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], normalised."""
        batch = torch.from_numpy(np.ascontiguousarray(images))
        if batch.ndim == 3:
            batch = batch.unsqueeze(-1).expand(-1, -1, -1, 3)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        height, width = batch.shape[-2:]
        scale = self.size / min(height, width)
        new_size = (max(self.size, round(height * scale)), max(self.size, round(width * scale)))
        if new_size != (height, width):
            antialias = self.interpolation != "nearest" and scale < 1
            batch = F.interpolate(batch, size=new_size, mode=self.interpolation,
                                  align_corners=False if self.interpolation != "nearest" else None,
                                  antialias=antialias)
            batch = batch.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clamps to 0..255 too
        top = (batch.shape[-2] - self.size) // 2
        left = (batch.shape[-1] - self.size) // 2
        batch = batch[..., top: top + self.size, left: left + self.size]
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std
