"""Moving a method's batches to the run's device: the one mover the trainer and the encode loop share.

A batch is a tensor, or a tuple / list of tensors and plain values (a method's multi-part inputs:
images, prompt rows, a text length). Tensors move without blocking the host (a pinned loader batch
copies asynchronously on CUDA); image batches (4-D floating tensors) can go in channels_last, the
layout cuDNN's tensor-core kernels and oneDNN's convolutions want (``uses_channels_last``).
"""
import torch


def to_device(inputs, device, channels_last: bool = False):
    """``inputs`` on ``device``: a tensor, or a tuple / list of them (its type kept; values that
    are not tensors, such as a length, pass as they are); with ``channels_last``, image batches
    (4-D floating tensors) in that memory format."""
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(item, device, channels_last) for item in inputs)
    if not isinstance(inputs, torch.Tensor):
        return inputs
    inputs = inputs.to(device, non_blocking=True)
    if channels_last and inputs.dim() == 4 and inputs.is_floating_point():
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def uses_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether `model` runs on NHWC (channels_last) image batches on `device`.

    CUDA: any model with 4-D (conv) weights, frozen ones included (cuDNN's tensor-core kernels).
    CPU: convolutional backbones only, i.e. more than one conv weight (oneDNN's NHWC kernels;
    a ViT's single patch-embedding conv gains nothing). The layout changes rounding only.
    """
    if device.type not in ("cuda", "cpu"):
        return False
    convolutions = sum(1 for p in model.parameters() if p.dim() == 4)
    return convolutions > (0 if device.type == "cuda" else 1)
