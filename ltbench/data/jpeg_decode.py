"""Opt-in batched JPEG decoding on the GPU (config ``gpu_jpeg: true``).

Loader workers only read the files; the main process decodes a whole batch of JPEGs with
``torchvision.io.decode_jpeg(list, device=...)`` (nvJPEG on CUDA) and resizes, crops and
normalises them on that device with the same PIL-exact batch transform as in-memory splits
(TransformSpec.apply_batch). The pixels differ a little from Pillow's decoder, so the transform's
fingerprint (cache keys) says so. Files that are not JPEGs (PNG, ...) are decoded by Pillow in
the workers, on the CPU, and then take the same device transform.

A JPEG the device decoder rejects (nvJPEG cannot decode CMYK / YCCK JPEGs: ImageNet's train set
has about 22) is decoded by Pillow instead, that file alone, on the CPU, and moved to the device;
the loader counts those files (``_DecodedFileBatches.decoded_by_pillow``) and the run records the
count. Only a file Pillow cannot read either is an error.

The same functions run with device="cpu" (torchvision's libjpeg-turbo decoder): that is how the
tests check this path on machines without a GPU. Runs refuse the setting without CUDA
(app/runner.py), where it would only be slower.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch

from ltbench.core.errors import UserError
from ltbench.data.pixels import to_device_async

JPEG_MAGIC = b"\xff\xd8\xff"


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def read_payload(path) -> torch.Tensor:
    """What a loader worker hands on for one file: a JPEG's bytes (1-D uint8), or any other
    format decoded by Pillow to RGB pixels [H, W, 3] uint8. Errors are the loader's own
    (FileNotFoundError, Pillow's OSError / ValueError), turned into one line by the caller."""
    with open(path, "rb") as handle:
        data = handle.read()
    if is_jpeg(data):
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy())


def decode_payloads(payloads: Sequence[torch.Tensor], device, names: Sequence[str] = None,
                    fallbacks: Optional[List[str]] = None) -> List[torch.Tensor]:
    """[3, H, W] uint8 images on ``device``: the JPEG payloads decoded in one batched call, the
    already decoded ones moved there. A JPEG the device decoder rejects is decoded by Pillow
    (its name appended to ``fallbacks``); ``names`` (file paths) go into those entries and into
    the error of a file neither decoder can read."""
    from torchvision.io import ImageReadMode, decode_jpeg

    device = torch.device(device)
    images: List[torch.Tensor] = [None] * len(payloads)
    jpegs = [row for row, payload in enumerate(payloads) if payload.dim() == 1]
    if jpegs:
        blobs = [payloads[row] for row in jpegs]
        try:
            decoded = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # one file the decoder rejects fails the whole call: decode one by one
            decoded = [_decode_one(blob, device, names[row] if names else f"image {row}", fallbacks)
                       for row, blob in zip(jpegs, blobs)]
        for row, image in zip(jpegs, decoded):
            images[row] = image
    for row, payload in enumerate(payloads):
        if payload.dim() == 3:
            images[row] = payload.permute(2, 0, 1).to(device, non_blocking=True)
    return images


def _decode_one(blob: torch.Tensor, device, name: str, fallbacks: Optional[List[str]]) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(blob, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:  # nvJPEG: CMYK / YCCK, some progressive or unusual subsampling
        device_problem = (str(error).splitlines() or ["not a readable JPEG"])[0][:160]
    image = _pillow_decode(blob, name, device_problem)
    if fallbacks is not None:
        fallbacks.append(name)
    return image.to(device, non_blocking=True)


def _pillow_decode(blob: torch.Tensor, name: str, device_problem: str) -> torch.Tensor:
    """[3, H, W] uint8 on the CPU: Pillow's RGB pixels of a JPEG's bytes, as the Pillow loader
    decodes them (CMYK / YCCK converted by Pillow)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob.numpy().tobytes())) as image:
            pixels = np.asarray(image.convert("RGB")).copy()
    except (OSError, SyntaxError, ValueError) as error:  # truncated, garbage (Pillow's errors)
        problem = (str(error).splitlines() or [type(error).__name__])[0][:160]
        raise UserError(f"cannot decode image {name} (gpu_jpeg: {device_problem}; Pillow: {problem}); replace "
                        "or remove the file, or unset gpu_jpeg to decode with Pillow") from None
    return torch.from_numpy(pixels).permute(2, 0, 1)


def transform_images(images: Sequence[torch.Tensor], spec) -> torch.Tensor:
    """[N, 3, size, size] float: ``spec.apply_batch`` on the images' device, once per distinct
    image size (a batch of photos usually has few), in the images' order."""
    out = None
    by_size = {}
    for row, image in enumerate(images):
        by_size.setdefault(tuple(image.shape[-2:]), []).append(row)
    for rows in by_size.values():
        group = torch.stack([images[row] for row in rows]).permute(0, 2, 3, 1)  # [n, H, W, 3]
        transformed = spec.apply_batch(group, group.device)
        if out is None:
            out = transformed.new_empty((len(images), *transformed.shape[1:]))
        out[to_device_async(torch.tensor(rows), out.device)] = transformed  # no blocking copy on CUDA
    return out
