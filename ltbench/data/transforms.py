"""Evaluation transforms and training augmentation, described by value so that caches can be keyed by them.

Each spec runs two ways: per image on PIL images (files decoded in loader workers) and per
batch on uint8 tensors (in-memory datasets, no Python loop over images). The two agree up to the
bicubic kernel (PIL uses a = -0.5, torch a = -0.75), so one split always takes one of the two.
"""
import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.core.errors import UserError, close_matches_hint

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def _to_rgb(image):
    # A named function, not a lambda: loader workers may need to pickle the transform.
    return image.convert("RGB")


def _float_batch(images: np.ndarray, device=None) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, H, W] in [0, 1], on ``device``.

    The uint8 pixels move, not the floats (a quarter of the bytes), and everything after runs
    on ``device``: on a GPU the transform is then no CPU work for the encoder to wait on.
    """
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    if batch.ndim == 3:
        batch = batch.unsqueeze(-1).expand(-1, -1, -1, 3)
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def _normalise(batch: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / torch.tensor(std, device=batch.device).view(1, 3, 1, 1)


@dataclass(frozen=True)
class TransformSpec:
    """Resize the shorter side to ``resize`` (default ``size``), centre-crop ``size`` x ``size``,
    scale to [0, 1], normalise. (``resize`` 256 with ``size`` 224 is the ImageNet recipe.)"""

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str = "bicubic"
    resize: Optional[int] = None

    def fingerprint(self) -> dict:
        # resize None is left out, so the cache keys of specs written before the field stay valid.
        values = {key: value for key, value in asdict(self).items() if key != "resize" or value is not None}
        return {"kind": "eval", **values}

    @property
    def resize_to(self) -> int:
        return self.resize or self.size

    def pil_transform(self):
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        return T.Compose([
            T.Resize(self.resize_to, interpolation=mode),
            T.CenterCrop(self.size),
            _to_rgb,
            T.ToTensor(),
            T.Normalize(self.mean, self.std),
        ])

    def apply_batch(self, images: np.ndarray, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], normalised, computed on ``device``."""
        batch = _float_batch(images, device)
        height, width = batch.shape[-2:]
        scale = self.resize_to / min(height, width)
        new_size = (max(self.resize_to, round(height * scale)), max(self.resize_to, round(width * scale)))
        if new_size != (height, width):
            antialias = self.interpolation != "nearest" and scale < 1
            batch = F.interpolate(batch, size=new_size, mode=self.interpolation,
                                  align_corners=False if self.interpolation != "nearest" else None,
                                  antialias=antialias)
            batch = batch.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clamps to 0..255 too
        top = (batch.shape[-2] - self.size) // 2
        left = (batch.shape[-1] - self.size) // 2
        batch = batch[..., top: top + self.size, left: left + self.size]
        return _normalise(batch, self.mean, self.std)


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
        return {"kind": "augment", **asdict(self)}

    @classmethod
    def from_eval(cls, eval_spec: TransformSpec, options: dict) -> "AugmentSpec":
        """The model's size, normalisation and interpolation; crop, flip, jitter from config ``options``."""
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
        steps = [_to_rgb, T.RandomResizedCrop(self.size, scale=self.crop_scale, ratio=self.crop_ratio,
                                              interpolation=mode)]
        if self.flip:
            steps.append(T.RandomHorizontalFlip())
        if any(self.color_jitter):
            steps.append(T.ColorJitter(*self.color_jitter))
        return T.Compose(steps + [T.ToTensor(), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], a different draw per image.

        All randomness comes from ``generator``, so a batch is reproducible from its seed.
        """
        batch = _float_batch(images)
        count, height, width = batch.shape[0], batch.shape[-2], batch.shape[-1]
        boxes = _crop_boxes(count, height, width, self.crop_scale, self.crop_ratio, generator)
        flips = (torch.rand(count, generator=generator) < 0.5) & self.flip
        batch = _resized_crops(batch, boxes, flips, self.size, self.interpolation)
        batch = _color_jitter(batch, self.color_jitter, generator)
        return _normalise(batch, self.mean, self.std)


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


def _resized_crops(batch, boxes, flips, size, interpolation) -> torch.Tensor:
    """Each image's box resampled to size x size (mirrored where ``flips``), all in one grid_sample.

    grid_sample does not antialias; in-memory datasets hold small images (CIFAR, digits) that
    are enlarged to the model's size, where that makes no difference.
    """
    height, width = batch.shape[-2:]
    top, left, box_h, box_w = boxes.to(batch.dtype).unbind(1)
    # Output pixel centres land on the box's pixel centres (align_corners=False, like F.interpolate).
    theta = torch.zeros(len(batch), 2, 3)
    theta[:, 0, 0] = torch.where(flips, -box_w, box_w) / width
    theta[:, 0, 2] = (2 * left + box_w) / width - 1
    theta[:, 1, 1] = box_h / height
    theta[:, 1, 2] = (2 * top + box_h) / height - 1
    grid = F.affine_grid(theta, [len(batch), 3, size, size], align_corners=False)
    batch = F.grid_sample(batch, grid, mode=interpolation, padding_mode="border", align_corners=False)
    return batch.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clamps to 0..255 too


def _color_jitter(batch, strengths, generator) -> torch.Tensor:
    """torchvision's ColorJitter with per-image factors, the adjustments in one random order per batch."""
    for kind in torch.randperm(4, generator=generator).tolist():
        strength = strengths[kind]
        if strength == 0:
            continue
        draws = torch.rand(len(batch), generator=generator)
        if kind == 3:
            factors = (2 * draws - 1) * strength  # hue: a shift in [-hue, hue] turns
        else:
            low = max(0.0, 1.0 - strength)
            factors = low + draws * (1.0 + strength - low)
        batch = _JITTERS[kind](batch, factors)
    return batch


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
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1) + sixths.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp_(0.0, 1.0)
    return ramp.mul_((value * saturation).unsqueeze(1)).neg_().add_(value.unsqueeze(1)).clamp_(0.0, 1.0)


_JITTERS = (_adjust_brightness, _adjust_contrast, _adjust_saturation, _shift_hue)  # ColorJitter's order
