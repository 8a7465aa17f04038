"""Evaluation transforms, described by value so that caches can be keyed by them (training
augmentation: augment.py; test-time crops: crops.py).

Each spec runs two ways: per image on PIL images (files decoded in loader workers) and per
batch on uint8 tensors (in-memory datasets, no Python loop over images). The batch path resizes
as PIL does (pil_resize.py), so the two paths give the same pixels (within one grey level), the
pixels every reference implementation, resizing with PIL, feeds its model. It runs on the device
it is given, reads nothing back to the host, and computes in float32 after the resize.
"""
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from ltbench.core.errors import UserError
from ltbench.data.pil_resize import centre_crop_offsets, pil_resize, shortest_side_size
from ltbench.data.pixels import normalise, pixel_batch, to_rgb, unit_range

# open_clip's preprocess_cfg resize_mode: 'shortest' (shorter side to size, centre crop) or
# 'squash' (both sides to size, aspect ratio not kept; SigLIP, DFN).
RESIZE_MODES = ("shortest", "squash")


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
        return T.Compose(draft + geometry + [to_rgb, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def apply_batch(self, images: np.ndarray, device=None) -> torch.Tensor:
        """uint8 [N, H, W] or [N, H, W, 3] -> float [N, 3, size, size], normalised, computed on ``device``."""
        batch = pixel_batch(images, device)
        height, width = batch.shape[-2:]
        if self.resize_mode == "squash":
            batch = pil_resize(batch, torch.tensor([[0, 0, height, width]]), (self.size, self.size),
                               self.interpolation)
            return normalise(unit_range(batch), self.mean, self.std)
        resized = shortest_side_size(height, width, self.resize_to)
        if resized != (height, width):
            batch = pil_resize(batch, torch.tensor([[0, 0, height, width]]), resized, self.interpolation)
        top, left = centre_crop_offsets(*resized, self.size)
        batch = batch[..., top: top + self.size, left: left + self.size]
        return normalise(unit_range(batch), self.mean, self.std)


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
