"""LIFT+'s minimalist data augmentation (Shi, Wei, Li 2025; code shijxcs/LIFT-plus,
utils/transforms.py ``MinimalistRandomResizedCrop``): a square random-resized crop, no flip, no
colour jitter, whose smallest allowed area fraction rises from epoch to epoch.

At epoch e of E (0-based) the code's schedule is t = e / (E - 1) and a fraction s(t) of the way
from the crop's scale range low end to its top: ``min`` s = 0, ``max`` s = 1, ``linear`` s = t,
``convex`` s = 1 - sqrt(1 - t^2) (its default), ``concave`` s = sqrt(1 - (1 - t)^2); the crops of
that epoch take an area fraction drawn uniformly in [low + s (high - low), high], both ends capped
at the largest square that fits (side^2 / area of the shorter side), and a square side of
round(sqrt(area * fraction)) at a uniform position. So the first epoch crops as freely as
RandomResizedCrop and the last one (convex, linear, concave) takes the whole shorter side.

``MinimalistSchedule`` is the whole schedule, by value; ``spec_for(epoch)`` the epoch's crop
(``MinimalistCropSpec``), which runs per image on PIL images (drawing from torch's global RNG as
the code's ``get_params`` does, in the same order: the caller seeds it per image) or per batch on
uint8 arrays (every draw from the caller's generator, before any pixel work).
"""
import math
from dataclasses import asdict, dataclass
from typing import Tuple

import numpy as np
import torch

from ltbench.core.errors import UserError, unknown_name
from ltbench.data.pil_resize import pil_resize
from ltbench.data.pixels import normalise, pixel_batch, to_rgb, unit_range

MDA_FUNCTIONS = ("min", "max", "linear", "convex", "concave")


def _schedule_fraction(t: float, func: str) -> float:
    """How far (0..1) the smallest area fraction has moved from the range's low end at time t."""
    if func == "min":
        return 0
    if func == "max":
        return 1
    if func == "linear":
        return t
    if func == "convex":
        return 1 - math.sqrt(1 - t ** 2)
    if func == "concave":
        return math.sqrt(1 - (1 - t) ** 2)
    raise unknown_name("augment.schedule", func, MDA_FUNCTIONS)


def minimalist_min_scale(epoch: int, epochs: int, func: str = "convex", scale=(0.08, 1.0)) -> float:
    """The smallest area fraction of epoch ``epoch`` (0-based) of ``epochs``: the code's
    get_min_scale after ``epoch`` calls of step()."""
    if epochs < 2:
        raise UserError(f"train.epochs={epochs}: the minimalist crop's schedule runs from the first to the last "
                        "epoch (t = epoch / (epochs - 1), as LIFT+'s code); train at least 2 epochs or use "
                        "augment.kind random_resized_crop")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} is outside 0..{epochs - 1}")
    fraction = _schedule_fraction(epoch / (epochs - 1), func)
    return fraction * (scale[1] - scale[0]) + scale[0]


def _square_range(height: int, width: int, low: float, high: float) -> Tuple[float, float]:
    """The area-fraction range of square crops that fit a height x width image."""
    fits = min(height, width) ** 2 / (height * width)
    return min(low, fits), min(high, fits)


def square_crop_box(height: int, width: int, low: float, high: float) -> Tuple[int, int, int, int]:
    """(top, left, side, side) of one square crop, from torch's global RNG: one uniform area
    fraction (a float32 draw), then the top and the left offset (two randint draws), the draws
    and the order of LIFT+'s get_params, so a per-image seed gives the code's box."""
    low, high = _square_range(height, width, low, high)
    fraction = torch.empty(1).uniform_(low, high).item()
    side = int(round(math.sqrt(height * width * fraction)))
    top = torch.randint(0, height - side + 1, size=(1,)).item()
    left = torch.randint(0, width - side + 1, size=(1,)).item()
    return top, left, side, side


def square_crop_boxes(count: int, height: int, width: int, low: float, high: float,
                      generator: torch.Generator) -> torch.Tensor:
    """[count, 4] (top, left, side, side) drawn from ``generator`` for a batch: the area fractions
    (float32 uniforms, as the code's), then the offsets. The same distribution as
    square_crop_box, not the same draws (the batch draws all fractions first)."""
    low, high = _square_range(height, width, low, high)
    fractions = torch.empty(count).uniform_(low, high, generator=generator)
    side = torch.round(torch.sqrt(fractions.double() * (height * width)))
    offsets = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    top = torch.floor(offsets[:, 0] * (height - side + 1))
    left = torch.floor(offsets[:, 1] * (width - side + 1))
    return torch.stack([top, left, side, side], dim=1).long()


class _SquareCrop:
    """PIL image -> the square crop of one draw, resized to size x size (a class, not a lambda:
    loader workers pickle it)."""

    def __init__(self, size: int, low: float, high: float, interpolation: str):
        self.size, self.low, self.high, self.interpolation = size, low, high, interpolation

    def __call__(self, image):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        top, left, height, width = square_crop_box(image.height, image.width, self.low, self.high)
        mode = getattr(InterpolationMode, self.interpolation.upper())
        return TF.resized_crop(image, top, left, height, width, [self.size, self.size], mode, antialias=True)


@dataclass(frozen=True)
class MinimalistCropSpec:
    """One epoch's square random-resized crop: area fraction in [min_scale, max_scale] (capped at
    the largest square that fits), resized to ``size``, scaled to [0, 1] and normalised."""

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    min_scale: float
    max_scale: float

    def fingerprint(self) -> dict:
        return {"kind": "minimalist_crop", "resampler": "pil", **asdict(self)}

    def pil_transform(self):
        """Per-image crops of PIL images; they draw from torch's global RNG."""
        from torchvision import transforms as T

        return T.Compose([to_rgb, _SquareCrop(self.size, self.min_scale, self.max_scale, self.interpolation),
                          T.ToTensor(), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, generator: torch.Generator, positions=None,
                    total: int = None, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size] on ``device``, a draw per
        image from ``generator``; positions / total as AugmentSpec.apply_batch (a process's share
        of a global batch takes the draws of its positions)."""
        count, height, width = len(images), images.shape[1], images.shape[2]
        total = count if total is None else int(total)
        rows = torch.arange(count) if positions is None else torch.as_tensor(positions, dtype=torch.long)
        boxes = square_crop_boxes(total, height, width, self.min_scale, self.max_scale, generator)[rows]
        batch = pil_resize(pixel_batch(images, device), boxes, (self.size, self.size), self.interpolation)
        return normalise(unit_range(batch), self.mean, self.std)


@dataclass(frozen=True)
class MinimalistSchedule:
    """LIFT+'s minimalist augmentation over ``epochs`` epochs: ``spec_for(epoch)`` is the crop of
    that epoch. ``crop_scale``: the code's scale range (0.08, 1.0); ``func``: its mda_func."""

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    crop_scale: Tuple[float, float]
    func: str
    epochs: int

    def __post_init__(self):
        if self.func not in MDA_FUNCTIONS:
            raise unknown_name("augment.schedule", self.func, MDA_FUNCTIONS)
        minimalist_min_scale(0, self.epochs, self.func, self.crop_scale)  # epochs < 2: a one-line error

    def fingerprint(self) -> dict:
        return {"kind": "minimalist", "resampler": "pil", **asdict(self)}

    def spec_for(self, epoch: int) -> MinimalistCropSpec:
        low = minimalist_min_scale(epoch, self.epochs, self.func, self.crop_scale)
        return MinimalistCropSpec(self.size, self.mean, self.std, self.interpolation, low, self.crop_scale[1])


__all__ = ["MDA_FUNCTIONS", "MinimalistCropSpec", "MinimalistSchedule", "minimalist_min_scale", "square_crop_box",
           "square_crop_boxes"]
