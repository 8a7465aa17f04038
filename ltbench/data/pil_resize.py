"""PIL's resize, batched: the pixels every reference implementation feeds its model, computed as
two matrix products on any device.

PIL's filters (bicubic a = -0.5, not torch's -0.75, widened to antialias when shrinking), its
fixed-point coefficients, each pass rounded to 8 bits, in Pillow's order of passes: the result
matches Pillow's within one grey level. The two passes stay in float64, whose sums of PIL's
fixed-point products are exact integers (float32's 24-bit significand is not), so the pixels are
the same on every device. ``boxes`` are host numbers: nothing here reads a value back from the
device (no per-step sync).
"""
from typing import Tuple

import torch

from ltbench.core.errors import UserError
from ltbench.data.pixels import to_device_async

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


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
