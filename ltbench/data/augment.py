"""Training augmentation, described by value: random resized crop, horizontal flip and colour
jitter (BALLAD's recipe), per image on PIL images or per batch on uint8 arrays.

The batch path draws every random number from the caller's CPU generator before any pixel work,
in the same order on every device, and sends the draws to the device in one small asynchronous
copy each; the crops resize with PIL's resampling (pil_resize.py), the jitters follow
torchvision's ColorJitter.
"""
import math
from dataclasses import asdict, dataclass
from typing import Tuple

import numpy as np
import torch

from ltbench.core.errors import UserError, close_matches_hint
from ltbench.data.pil_resize import pil_resize
from ltbench.data.pixels import normalise, pixel_batch, to_device_async, to_rgb, unit_range
from ltbench.data.transforms import TransformSpec


@dataclass(frozen=True)
class AugmentSpec:
    """Random resized crop, horizontal flip, colour jitter, scale to [0, 1], normalise (BALLAD's recipe).

    ``color_jitter`` is (brightness, contrast, saturation, hue) as in torchvision's ColorJitter.
    """

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_scale: Tuple[float, float] = (0.5, 1.0)
    crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    color_jitter: Tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.0)

    def fingerprint(self) -> dict:
        return {"kind": "augment", "resampler": "pil", **asdict(self)}

    @classmethod
    def from_eval(cls, eval_spec: TransformSpec, options: dict) -> "AugmentSpec":
        """The model's size, normalisation and interpolation; crop, flip, jitter from config
        ``options``, which must name all four (the method's YAML is their one source: the class
        defaults serve Python callers only)."""
        missing = [key for key in _OPTION_CHECKS if key not in (options or {})]
        if missing:
            raise UserError(f"augmentation options {', '.join(missing)} not set; every augment section of "
                            "benchmarks/methods/*.yaml gives crop_scale, crop_ratio, flip and color_jitter")
        values = {}
        for key, value in (options or {}).items():
            if key not in _OPTION_CHECKS:
                hint = close_matches_hint(key, _OPTION_CHECKS)
                raise UserError(f"unknown augmentation option '{key}'{hint}")
            values[key] = _OPTION_CHECKS[key](key, value)
        return cls(size=eval_spec.size, mean=eval_spec.mean, std=eval_spec.std,
                   interpolation=eval_spec.interpolation, **values)

    def pil_transform(self):
        """Per-image augmentation of PIL images; it draws from torch's global RNG."""
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        # RGB first: PIL resizes palette images with nearest neighbours whatever is asked.
        steps = [to_rgb, T.RandomResizedCrop(self.size, scale=self.crop_scale, ratio=self.crop_ratio,
                                              interpolation=mode)]
        if self.flip:
            steps.append(T.RandomHorizontalFlip())
        if any(self.color_jitter):
            steps.append(T.ColorJitter(*self.color_jitter))
        return T.Compose(steps + [T.ToTensor(), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, generator: torch.Generator, positions=None,
                    total: int = None, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], a different draw per image,
        computed on ``device`` (default: where the images are; numpy: the CPU).

        All randomness comes from ``generator`` (a CPU generator), drawn before any pixel work, in
        the same order on every device, so a batch is reproducible from its seed.
        positions / total: the images are these positions of a batch of `total` images (a
        process's share of a global batch under torchrun): the draws are made for all `total`
        and each image takes those of its position, so the processes together augment as one
        process augments the whole batch.
        """
        count, height, width = len(images), images.shape[1], images.shape[2]
        total = count if total is None else int(total)
        rows = torch.arange(count) if positions is None else torch.as_tensor(positions, dtype=torch.long)
        boxes = _crop_boxes(total, height, width, self.crop_scale, self.crop_ratio, generator)[rows]
        flips = ((torch.rand(total, generator=generator) < 0.5) & self.flip)[rows]
        jitters = _jitter_draws(self.color_jitter, generator, total, rows)
        batch = pixel_batch(images, device)
        batch = pil_resize(batch, boxes, (self.size, self.size), self.interpolation)
        batch = unit_range(torch.where(to_device_async(flips, batch.device).view(-1, 1, 1, 1), batch.flip(-1), batch))
        for kind, factors in jitters:
            batch = _JITTERS[kind](batch, to_device_async(factors, batch.device))
        return normalise(batch, self.mean, self.std)


def _numbers(key, value, count):
    if not (isinstance(value, (list, tuple)) and len(value) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UserError(f"augmentation option '{key}' must be a list of {count} numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _check_crop_scale(key, value):
    low, high = _numbers(key, value, 2)
    if not 0 < low <= high <= 1:
        raise UserError(f"augmentation option '{key}' must be [min, max] with 0 < min <= max <= 1, "
                        f"got {value!r}")
    return low, high


def _check_crop_ratio(key, value):
    low, high = _numbers(key, value, 2)
    if not 0 < low <= high:
        raise UserError(f"augmentation option '{key}' must be [min, max] with 0 < min <= max, got {value!r}")
    return low, high


def _check_flip(key, value):
    if not isinstance(value, bool):
        raise UserError(f"augmentation option '{key}' must be true or false, got {value!r}")
    return value


def _check_color_jitter(key, value):
    jitter = _numbers(key, value, 4)
    if min(jitter) < 0 or jitter[3] > 0.5:
        raise UserError(f"augmentation option '{key}' must be [brightness, contrast, saturation, hue], "
                        f"all >= 0 and hue <= 0.5, got {value!r}")
    return jitter


_OPTION_CHECKS = {"crop_scale": _check_crop_scale, "crop_ratio": _check_crop_ratio,
                  "flip": _check_flip, "color_jitter": _check_color_jitter}


def _crop_boxes(count, height, width, scale, ratio, generator, tries=10) -> torch.Tensor:
    """(top, left, height, width) [N, 4] per image, drawn like torchvision's RandomResizedCrop.get_params.

    Every image draws its ``tries`` candidates at once and keeps the first that fits; an image
    with none takes the centre crop clamped to ``ratio``, as torchvision does.
    """
    area = torch.rand(count, tries, generator=generator) * (scale[1] - scale[0]) + scale[0]
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(count, tries, generator=generator) * (log_high - log_low) + log_low)
    box_w = torch.round(torch.sqrt(area * height * width * aspect))
    box_h = torch.round(torch.sqrt(area * height * width / aspect))
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = fits.int().argmax(dim=1)  # argmax returns the first maximum: the first candidate that fits
    rows = torch.arange(count)
    found = fits.any(dim=1)
    centre_h, centre_w = _centre_box(height, width, ratio)
    box_h = torch.where(found, box_h[rows, first], float(centre_h))
    box_w = torch.where(found, box_w[rows, first], float(centre_w))
    offsets = torch.rand(count, 2, generator=generator)
    top = torch.where(found, torch.floor(offsets[:, 0] * (height - box_h + 1)),
                      float((height - centre_h) // 2))
    left = torch.where(found, torch.floor(offsets[:, 1] * (width - box_w + 1)),
                       float((width - centre_w) // 2))
    return torch.stack([top, left, box_h, box_w], dim=1).long()


def _centre_box(height, width, ratio):
    """torchvision's fallback: the whole image, cut down to the nearest allowed aspect ratio."""
    if width / height < ratio[0]:
        return int(round(width / ratio[0])), width
    if width / height > ratio[1]:
        return height, int(round(height * ratio[1]))
    return height, width


def _jitter_draws(strengths, generator, total: int, rows: torch.Tensor):
    """torchvision's ColorJitter with per-image factors, drawn on the host: [(adjustment, factors
    of `rows`)] in one random order per batch (factors drawn for `total` images, `rows` taken)."""
    draws = []
    for kind in torch.randperm(4, generator=generator).tolist():
        strength = strengths[kind]
        if strength == 0:
            continue
        values = torch.rand(total, generator=generator)[rows]
        if kind == 3:
            factors = (2 * values - 1) * strength  # hue: a shift in [-hue, hue] turns
        else:
            low = max(0.0, 1.0 - strength)
            factors = low + values * (1.0 + strength - low)
        draws.append((kind, factors))
    return draws


def _grey(batch):
    """ITU-R 601-2 luma [N, 1, H, W], the weights torchvision uses."""
    red, green, blue = batch.unbind(1)
    return (0.2989 * red + 0.587 * green + 0.114 * blue).unsqueeze(1)


def _blend(batch, other, factors):
    # In place: the batch is always a fresh tensor here, and a batch of 224 px images is large.
    factors = factors.view(-1, 1, 1, 1)
    return batch.mul_(factors).add_(other * (1 - factors)).clamp_(0.0, 1.0)


def _adjust_brightness(batch, factors):
    return batch.mul_(factors.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def _adjust_contrast(batch, factors):
    return _blend(batch, _grey(batch).mean(dim=(1, 2, 3), keepdim=True), factors)


def _adjust_saturation(batch, factors):
    return _blend(batch, _grey(batch), factors)


def _shift_hue(batch, shifts):
    """Rotate each image's hue by shifts[i] turns, through HSV as torchvision's adjust_hue does."""
    value = batch.max(dim=1).values
    chroma = value - batch.min(dim=1).values
    grey = chroma == 0
    saturation = chroma / torch.where(grey, 1.0, value)
    # How far each channel is below the maximum, in chroma units; the maximal channel picks the sector.
    red, green, blue = ((value.unsqueeze(1) - batch) / torch.where(grey, 1.0, chroma).unsqueeze(1)).unbind(1)
    hue = torch.where(batch[:, 0] == value, blue - green,
                      torch.where(batch[:, 1] == value, 2 + red - blue, 4 + green - red))
    sixths = (hue + 6 * shifts.view(-1, 1, 1)) % 6
    # HSV -> RGB without a per-sector table: channel n (5, 3, 1 for R, G, B) at k = (n + 6 h) mod 6
    # is v - v s clamp(min(k, 4 - k), 0, 1).
    offsets = torch.arange(5.0, 0.0, -2.0, dtype=sixths.dtype, device=sixths.device).view(1, 3, 1, 1)  # 5, 3, 1
    k = (offsets + sixths.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp_(0.0, 1.0)
    return ramp.mul_((value * saturation).unsqueeze(1)).neg_().add_(value.unsqueeze(1)).clamp_(0.0, 1.0)


_JITTERS = (_adjust_brightness, _adjust_contrast, _adjust_saturation, _shift_hue)  # ColorJitter's order
