"""Image batches as pixels on a device: uint8 images to float grey levels there, [0, 1], normalised.

The uint8 pixels move to the device, not the floats (an eighth of the bytes), and without
blocking the host; everything after runs on that device (transforms.py, augment.py, crops.py).
"""
import numpy as np
import torch


def to_rgb(image):
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


def pixel_batch(images: np.ndarray, device=None) -> torch.Tensor:
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


def unit_range(batch: torch.Tensor) -> torch.Tensor:
    """Grey levels 0..255 -> float32 in [0, 1], as ToTensor."""
    return batch.float().div_(255.0)


def normalise(batch: torch.Tensor, mean, std) -> torch.Tensor:
    mean = to_device_async(torch.tensor(mean).view(1, 3, 1, 1), batch.device)
    return (batch - mean) / to_device_async(torch.tensor(std).view(1, 3, 1, 1), batch.device)
