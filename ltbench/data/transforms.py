"""Evaluation transforms and training augmentation, described by value so that caches can be keyed by them.

Each spec runs two ways: per image on PIL images (files decoded in loader workers) and per
batch on uint8 tensors (in-memory datasets, no Python loop over images). The batch path resizes
as PIL does, as two matrix products: PIL's filters (bicubic a = -0.5, not torch's -0.75, widened
to antialias when shrinking), its fixed-point coefficients, each pass rounded to 8 bits, in
Pillow's order of passes. The two paths then give the same pixels (within one grey level), the
pixels every reference implementation, resizing with PIL, feeds its model.

The batch path runs on the device it is given (training batches of in-memory splits go to the
run's GPU as uint8): random draws come from the caller's CPU generator, in the same order on
every device, and reach the device in one small asynchronous copy each; nothing in it reads a
value back to the host (no per-step sync). The two resize passes stay in float64, whose sums of
PIL's fixed-point products are exact integers (float32's 24-bit significand is not), so the
pixels are the same on every device; everything after them runs in float32.
"""
import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from ltbench.core.errors import UserError, close_matches_hint

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
# open_clip's preprocess_cfg resize_mode: 'shortest' (shorter side to size, centre crop) or
# 'squash' (both sides to size, aspect ratio not kept; SigLIP, DFN).
RESIZE_MODES = ("shortest", "squash")


def _to_rgb(image):
    # A named function, not a lambda: loader workers may need to pickle the transform.
    return image.convert("RGB")


def to_device_async(tensor: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on ``device`` without blocking the host: through pinned memory on CUDA (a
    copy from pageable memory waits for the device's queue)."""
    device = torch.device(device) if device is not None else tensor.device
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _pixel_batch(images: np.ndarray, device=None) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, 3] (numpy or torch) -> float64 [N, 3, H, W] of grey levels
    0..255, on ``device``.

    The uint8 pixels move, not the floats (an eighth of the bytes), and everything after runs
    on ``device``: on a GPU the transform is then no CPU work for the encoder to wait on. Float64:
    the resize rounds to grey levels as PIL does, which float32 (or TF32) matmuls would blur.
    """
    if isinstance(images, torch.Tensor):  # decoded on the device already (data/jpeg_decode.py)
        batch = to_device_async(images, device)
    else:
        batch = to_device_async(torch.from_numpy(np.ascontiguousarray(images)), device)
    if batch.ndim == 3:
        batch = batch.unsqueeze(-1).expand(-1, -1, -1, 3)
    return batch.permute(0, 3, 1, 2).double()


def _unit(batch: torch.Tensor) -> torch.Tensor:
    """Grey levels 0..255 -> float32 in [0, 1], as ToTensor."""
    return batch.float().div_(255.0)


def _normalise(batch: torch.Tensor, mean, std) -> torch.Tensor:
    mean = to_device_async(torch.tensor(mean).view(1, 3, 1, 1), batch.device)
    return (batch - mean) / to_device_async(torch.tensor(std).view(1, 3, 1, 1), batch.device)


def _pil_cubic(x: torch.Tensor) -> torch.Tensor:
    """PIL's bicubic kernel (Resample.c), a = -0.5; torch's bicubic uses a = -0.75."""
    a = -0.5
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _pil_nearest_sources(scale: torch.Tensor, out: int) -> torch.Tensor:
    """[N, out, 1] source pixel of each output pixel in PIL's nearest resize (ImagingScaleAffine):
    the centre 0.5 * scale advanced by repeated additions of scale, then truncated; the running
    sum, not (i + 0.5) * scale, decides the pixels that fall on a boundary."""
    steps = scale.expand(-1, out, 1).clone()
    steps[:, 0] *= 0.5
    return torch.trunc(torch.cumsum(steps, dim=1))


def _pil_triangle(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp_(min=0)


_PIL_FILTERS = {"bicubic": (2.0, _pil_cubic), "bilinear": (1.0, _pil_triangle)}  # (support, kernel)


def resize_weights(starts, lengths, full: int, out: int, interpolation: str) -> torch.Tensor:
    """[N, out, full] float64: PIL's resampling coefficients for one image axis.

    Image n's window [starts[n], starts[n] + lengths[n]) of a ``full``-pixel axis is resized to
    ``out`` pixels as PIL resizes the cropped image (precompute_coeffs in Resample.c: the kernel
    widened by the scale when shrinking, which antialiases, cut to the window, each row summing
    to 1). Nearest takes the pixel under each output pixel's centre, as PIL does. Computed on the
    device of ``starts`` (a tensor), or the CPU.
    """
    starts = torch.as_tensor(starts, dtype=torch.float64).view(-1, 1, 1)
    lengths = torch.as_tensor(lengths, dtype=torch.float64).view(-1, 1, 1)
    device = starts.device
    scale = lengths / out
    source = torch.arange(full, dtype=torch.float64, device=device).view(1, 1, -1) - starts  # window coordinates
    centre = (torch.arange(out, dtype=torch.float64, device=device).view(1, -1, 1) + 0.5) * scale
    if interpolation == "nearest":
        return (source == _pil_nearest_sources(scale, out).clamp(max=lengths - 1)).double()
    support, kernel = _PIL_FILTERS[interpolation]
    widen = scale.clamp(min=1.0)
    radius = support * widen
    low = torch.trunc(centre - radius + 0.5).clamp(min=0)
    high = torch.minimum(torch.trunc(centre + radius + 0.5), lengths)
    weights = kernel((source - centre + 0.5) * (1.0 / widen)) * ((source >= low) & (source < high))
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total == 0, 1.0, total)


PRECISION_BITS = 22  # PIL's fixed-point coefficients for 8-bit images (32 - 8 - 2)


def _fixed_point(weights: torch.Tensor) -> torch.Tensor:
    """Coefficients as PIL stores them: times 2**22, rounded half away from zero."""
    scaled = weights * (1 << PRECISION_BITS)
    return torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)


def _to_grey_levels(sums: torch.Tensor) -> torch.Tensor:
    """PIL's clip8: the fixed-point sum rounded half up to 8 bits and clamped (bicubic overshoots).
    Float64 keeps these integer sums exact (they stay below 2**40)."""
    return sums.add_(1 << (PRECISION_BITS - 1)).div_(1 << PRECISION_BITS).floor_().clamp_(0.0, 255.0)


def _pillow_major() -> int:
    import PIL

    return int(PIL.__version__.split(".")[0])


def _vertical_first(in_h, in_w, out_h: int, out_w: int) -> torch.Tensor:
    """Which images Pillow resizes vertically first: Pillow >= 13 does when the height shrinks by
    more than twice as many pixels as the width (Resample.c); Pillow <= 12 always goes
    horizontally first. The order matters: the first pass is stored in 8 bits."""
    shrink = torch.as_tensor(in_h) - out_h
    if _pillow_major() < 13:
        return torch.zeros_like(shrink, dtype=torch.bool)
    return (shrink > 0) & (shrink > 2 * (torch.as_tensor(in_w) - out_w))


def _rows_of(matrices: torch.Tensor, picked) -> torch.Tensor:
    # One matrix serves the whole batch; picked None: every image.
    return matrices if len(matrices) == 1 or picked is None else matrices.index_select(0, picked)


def pil_resize(batch: torch.Tensor, boxes: torch.Tensor, size: Tuple[int, int], interpolation: str) -> torch.Tensor:
    """Grey levels [N, C, H, W] (float64) -> [N, C, size[0], size[1]]: each image's box (top, left,
    height, width; one box for all, or one per image) cropped and resized as PIL resizes it, each
    pass rounded to 8 bits, the passes in Pillow's order.

    ``boxes`` are host numbers (drawn on the CPU): which images go vertically first is decided
    there, so nothing here waits for the device; the coefficients are computed on the device."""
    if interpolation not in INTERPOLATIONS:
        raise UserError(f"interpolation '{interpolation}': choose one of {', '.join(INTERPOLATIONS)}")
    height, width = batch.shape[-2:]
    boxes = torch.as_tensor(boxes).cpu()
    vertical_first = _vertical_first(boxes[:, 2], boxes[:, 3], *size).expand(len(batch))
    top, left, box_h, box_w = to_device_async(boxes, batch.device).unbind(1)
    columns = _fixed_point(resize_weights(left, box_w, width, size[1], interpolation)).to(batch).unsqueeze(1)
    rows = _fixed_point(resize_weights(top, box_h, height, size[0], interpolation)).to(batch).unsqueeze(1)
    if not vertical_first.any() or vertical_first.all():  # one order for the whole batch
        groups = [(bool(vertical_first.all()), None)]
    else:
        groups = [(first, to_device_async(torch.nonzero(mask).squeeze(1), batch.device))
                  for first, mask in ((False, ~vertical_first), (True, vertical_first))]
    out = batch.new_empty(*batch.shape[:2], *size)
    for first, picked in groups:
        images = batch if picked is None else batch.index_select(0, picked)
        row_weights, column_weights = _rows_of(rows, picked), _rows_of(columns, picked).transpose(-1, -2)
        if first:
            resized = _to_grey_levels(_to_grey_levels(row_weights @ images) @ column_weights)
        else:
            resized = _to_grey_levels(row_weights @ _to_grey_levels(images @ column_weights))
        if picked is None:
            return resized
        out[picked] = resized
    return out


def shortest_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """torchvision's Resize(size): the shorter side to ``size``, the longer one truncated."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def centre_crop_offsets(height: int, width: int, size: int) -> Tuple[int, int]:
    """torchvision's CenterCrop(size): (top, left), rounded half to even as it does."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


@dataclass(frozen=True)
class TransformSpec:
    """Resize and crop to ``size`` x ``size``, scale to [0, 1], normalise.

    ``resize_mode`` 'shortest': the shorter side to ``resize`` (default ``size``), then a centre
    crop (``resize`` 256 with ``size`` 224 is the ImageNet recipe); 'squash': both sides to
    ``size`` (open_clip's preprocess_cfg names it per model).
    """

    size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str = "bicubic"
    resize: Optional[int] = None
    resize_mode: str = "shortest"
    # Pillow's JPEG draft mode (opt-in, changes pixels): JPEG files decode at a reduced DCT
    # scale (1/2, 1/4, 1/8) when that still leaves both sides >= the resize target.
    jpeg_draft: bool = False
    # Batched JPEG decoding on the loader's device (opt-in, changes pixels; data/jpeg_decode.py):
    # frozen-encoder passes over file splits only (features, tokens, predictions).
    gpu_jpeg: bool = False

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"resize_mode '{self.resize_mode}': ltbench resizes with "
                            f"{' or '.join(RESIZE_MODES)}; choose a backbone whose preprocess_cfg uses one")
        if self.resize is not None and self.resize_mode != "shortest":
            raise UserError(f"resize {self.resize} needs resize_mode 'shortest' (resize, then centre crop)")

    def fingerprint(self) -> dict:
        # 'resampler' marks the PIL-exact batch resize: features cached by the torch bicubic of
        # earlier versions are not reused. Every field is in the key, at its value.
        return {"kind": "eval", "resampler": "pil", **asdict(self)}

    @property
    def resize_to(self) -> int:
        return self.resize or self.size

    def pil_transform(self):
        from torchvision import transforms as T

        mode = getattr(T.InterpolationMode, self.interpolation.upper())
        if self.resize_mode == "squash":
            geometry = [T.Resize((self.size, self.size), interpolation=mode)]
        else:
            geometry = [T.Resize(self.resize_to, interpolation=mode), T.CenterCrop(self.size)]
        draft = [JpegDraft(self.size if self.resize_mode == "squash" else self.resize_to)] if self.jpeg_draft else []
        return T.Compose(draft + geometry + [_to_rgb, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], normalised, computed on ``device``."""
        batch = _pixel_batch(images, device)
        height, width = batch.shape[-2:]
        if self.resize_mode == "squash":
            batch = pil_resize(batch, torch.tensor([[0, 0, height, width]]), (self.size, self.size),
                               self.interpolation)
            return _normalise(_unit(batch), self.mean, self.std)
        resized = shortest_side_size(height, width, self.resize_to)
        if resized != (height, width):
            batch = pil_resize(batch, torch.tensor([[0, 0, height, width]]), resized, self.interpolation)
        top, left = centre_crop_offsets(*resized, self.size)
        batch = batch[..., top: top + self.size, left: left + self.size]
        return _normalise(_unit(batch), self.mean, self.std)


class JpegDraft:
    """Ask Pillow to decode a not yet loaded JPEG at the smallest DCT scale (1, 1/2, 1/4, 1/8)
    that keeps both sides >= `target` (so only images at least twice the target shrink); other
    images pass unchanged. Pillow decides when the pixels are read, so this goes first."""

    def __init__(self, target: int):
        self.target = int(target)

    def __call__(self, image):
        if getattr(image, "format", None) == "JPEG" and hasattr(image, "draft"):
            image.draft(image.mode, (self.target, self.target))
        return image

    def __repr__(self):
        return f"JpegDraft({self.target})"


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
        steps = [_to_rgb, T.RandomResizedCrop(self.size, scale=self.crop_scale, ratio=self.crop_ratio,
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
        batch = _pixel_batch(images, device)
        batch = pil_resize(batch, boxes, (self.size, self.size), self.interpolation)
        batch = _unit(torch.where(to_device_async(flips, batch.device).view(-1, 1, 1, 1), batch.flip(-1), batch))
        for kind, factors in jitters:
            batch = _JITTERS[kind](batch, to_device_async(factors, batch.device))
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
