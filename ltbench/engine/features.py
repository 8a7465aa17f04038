"""Image features of a whole split through a frozen encoder, batched, cached by content.

In a distributed run each process encodes a block of the split (and of the class names for a
text classifier) and the blocks are gathered back into split order, so every process holds
the same array; see core/distributed.py and ArrayCache for who writes the cache.
"""
import hashlib
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ltbench.core import distributed
from ltbench.core.errors import UserError
from ltbench.data.loading import image_loader
from ltbench.engine.batches import RowReader
from ltbench.engine.cache import format_bytes
from ltbench.engine.transfer import to_device, uses_channels_last

TOKEN_DTYPES = {"float16": "fp16", "float32": "fp32"}


def _batches_of(split, ctx, batch_size: int, rows, transform=None, inputs=None):
    """Model inputs of `rows` (all of `split` if None) in order: the split's images through
    `transform`, or the rows of `inputs`, an array with one entry per image (cached tokens)."""
    count = len(split) if rows is None else len(rows)
    if inputs is None:
        loader = image_loader(split, transform, batch_size, sampler=rows, num_workers=ctx.num_workers,
                              pin_memory=ctx.device.type == "cuda", device=ctx.device)
        return _images_then_report(loader, split, ctx)
    index = np.arange(len(split)) if rows is None else np.asarray(rows)
    reader = RowReader(inputs, ctx.device)  # float32 on the device, cast there (engine/batches.py)
    return (reader(index[start: start + batch_size]) for start in range(0, count, batch_size))


def _images_then_report(loader, split, ctx):
    """The loader's image batches; then, for gpu_jpeg, how many files the GPU decoder rejected
    and Pillow decoded (data/jpeg_decode.py): logged, and recorded in the run's details."""
    for images, _ in loader:
        yield images
    fallbacks = getattr(loader, "decoded_by_pillow", None)
    if fallbacks is None:
        return
    # Every process decoded a block of the split: the count of the whole split (the wrapped
    # rows of the last block may count twice).
    count = int(sum(part.sum() for part in distributed.all_gather_list(torch.tensor([len(fallbacks)]))))
    if count:
        ctx.log(f"gpu_jpeg: {count} of {len(split):,} images of {split.name} decoded by Pillow: the GPU decoder "
                f"rejected them (CMYK / YCCK JPEGs), e.g. {fallbacks[0] if fallbacks else 'another process'}")
    counts = ctx.outputs.details.setdefault("gpu_jpeg", {}).setdefault("decoded_by_pillow", {})
    counts[split.name] = max(count, counts.get(split.name, 0))


def _channels_last(encoder, device):
    model = getattr(encoder, "model", None)
    return uses_channels_last(model, device) if isinstance(model, torch.nn.Module) else None


def _image_layout(channels_last, device: torch.device) -> bool:
    """channels_last as asked, or (None) NHWC on CUDA, cuDNN's fastest layout; see
    transfer.uses_channels_last for which models gain from it on the CPU."""
    return device.type == "cuda" if channels_last is None else bool(channels_last)


@torch.no_grad()
def encode_split(split, ctx, batch_size: int, encode, transform=None, inputs=None, desc: str = "encode",
                 device="cpu", channels_last=None) -> torch.Tensor:
    """encode(batch) [b, ...] of every image of `split`, in split order, float32: the one loop
    through which ltbench runs a frozen model over a split (features, decoder features,
    predictions).

    A batch is the split's images through `transform`, or rows of `inputs` (see _batches_of).
    Under torchrun each process encodes a block of the split and the blocks are gathered, so
    every process returns the whole [N, ...]. device: where the result lives: "cpu" (default;
    host memory for a large split's features or logits) or the run's device (features a head
    then trains on). channels_last: the layout of image batches (None: NHWC on CUDA only).
    """
    device = torch.device(device)
    if inputs is None:  # the split's images, through an image model (the whole job's count)
        ctx.outputs.cost.encoder_images += len(split)
    rows = distributed.shard_rows(len(split))
    count = len(split) if rows is None else len(rows)
    channels_last = _image_layout(channels_last, ctx.device)
    outputs = []
    for batch in tqdm(_batches_of(split, ctx, batch_size, rows, transform, inputs), desc=desc,
                      total=math.ceil(count / batch_size), disable=not ctx.show_progress, leave=False):
        with ctx.autocast():
            output = encode(to_device(batch, ctx.device, channels_last)).float()
        outputs.append(output.to(device))
    return distributed.gather_rows(torch.cat(outputs), len(split))


def extract_image_features(encoder, split, transform, batch_size: int, ctx, desc: str = "features"):
    """[N, D] float32 L2-normalised features, in split order."""
    return encode_split(split, ctx, batch_size, encoder.encode_images, transform=transform, desc=desc,
                        channels_last=_channels_last(encoder, ctx.device)).numpy()


def image_features(encoder, split, ctx, batch_size: int, transform=None, device=None):
    """Features of `split` from the cache, encoding the images only on a miss.

    device None: the cached float32 array [N, D] itself (numpy, memory-mapped on a hit); a
    device: a float32 tensor of them there (a copy), for computing with.

    The key holds everything that decides the numbers: the encoder's weights (a hash of its
    tensors, so a fine-tuned model never reuses the features of its base), the transform, the
    split's contents, and the precision used.
    """
    transform = ctx.image_transform(transform or encoder.eval_transform)
    description = {
        "kind": "image_features",
        "weights": encoder.visual_fingerprint(),
        "transform": transform.fingerprint(),
        "split": split.fingerprint,
        "precision": ctx.precision,
    }
    computed = []

    def compute():
        computed.append(True)
        return extract_image_features(encoder, split, transform, batch_size, ctx, desc=f"encode {split.name}")

    features = ctx.cache.get_or_compute(description, compute)
    if not computed:  # a cache hit: images this run did not encode (engine/cost.py)
        ctx.outputs.cost.reused_encoder_images += len(split)
    return features if device is None else as_tensor_on(features, device)


def as_tensor_on(array: np.ndarray, device) -> torch.Tensor:
    """A float32 tensor copy of `array` (a read-only memory map of the cache, say) on `device`."""
    return torch.from_numpy(np.array(array, dtype=np.float32)).to(device)


def token_cache_bytes(num_images: int, num_tokens: int, width: int, dtype="float16") -> int:
    """Bytes of a cached token array [num_images, num_tokens, width] (the .npy header adds ~128)."""
    return int(num_images) * int(num_tokens) * int(width) * np.dtype(dtype).itemsize


def _token_dtype(dtype) -> np.dtype:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else {"fp16": "float16",
                                                                    "fp32": "float32"}.get(dtype, dtype)
    if name not in TOKEN_DTYPES:
        raise UserError(f"token cache dtype '{dtype}': choose float16 (fp16) or float32 (fp32)")
    return np.dtype(name)


def image_tokens(encoder, split, ctx, batch_size: int, dtype="float16", transform=None) -> np.ndarray:
    """All last-layer tokens of `split` ([N, T, W], ``encoder.encode_tokens``), memory-mapped from
    the cache; the images are encoded only on a miss.

    The array can be far larger than memory (ImageNet-LT train with ViT-B/16 in float16:
    115,846 x 197 x 768 = 35 GB), so a miss streams batches into a memory-mapped temp file that
    is renamed into the cache once complete. Keyed like ``image_features`` plus the dtype.
    """
    if not hasattr(encoder, "encode_tokens"):
        raise UserError(f"backbone '{encoder.label}': image tokens need an open_clip CLIP backbone "
                        f"(ViT or ModifiedResNet), not a {type(encoder).__name__}")
    dtype = _token_dtype(dtype)
    transform = ctx.image_transform(transform or encoder.eval_transform)
    shape = (len(split), encoder.token_count(transform.size), encoder.token_width)
    description = {
        "kind": "image_tokens",
        "weights": encoder.visual_fingerprint(),
        "transform": transform.fingerprint(),
        "split": split.fingerprint,
        "precision": ctx.precision,
        "dtype": dtype.name,
    }

    computed = []

    def fill(out):
        computed.append(True)
        size = token_cache_bytes(*shape, dtype)
        ctx.log(f"caching tokens of {split.name}: {shape[0]:,} x {shape[1]:,} x {shape[2]:,} "
                f"{TOKEN_DTYPES[dtype.name]} = {format_bytes(size)} under {ctx.cache.root}")
        _extract_image_tokens(encoder, split, transform, batch_size, ctx, shape, dtype, out,
                              desc=f"tokens {split.name}")

    tokens = ctx.cache.get_or_compute_streaming(description, shape, dtype, fill)
    if computed:
        ctx.outputs.cost.encoder_images += len(split)
    else:  # a cache hit: images this run did not encode (engine/cost.py)
        ctx.outputs.cost.reused_encoder_images += len(split)
    return tokens


@torch.no_grad()
def _extract_image_tokens(encoder, split, transform, batch_size: int, ctx, shape, dtype: np.dtype,
                          out, desc: str):
    """Write the tokens [shape] of every image of `split` into `out`, in split order.

    In a distributed run each process encodes a block of rows and every batch is gathered, so
    that the writer of each machine can store the other processes' rows too; `out` is None in
    the processes that do not write.
    """
    rows = distributed.shard_rows(len(split))
    block = len(split) if rows is None else len(rows)
    start, channels_last = 0, _image_layout(_channels_last(encoder, ctx.device), ctx.device)
    for images in tqdm(_batches_of(split, ctx, batch_size, rows, transform), desc=desc,
                       total=math.ceil(block / batch_size), disable=not ctx.show_progress, leave=False):
        with ctx.autocast():
            tokens = encoder.encode_tokens(to_device(images, ctx.device, channels_last))
        tokens = tokens.to(torch.float16 if dtype == np.float16 else torch.float32)
        if tuple(tokens.shape[1:]) != tuple(shape[1:]) or start + len(tokens) > block:
            raise RuntimeError(f"encode_tokens gave {tuple(tokens.shape[1:])} per image for rows "
                               f"{start}..{start + len(tokens)}, expected {tuple(shape[1:])} for {block}")
        for owner, part in enumerate(distributed.all_gather_list(tokens)):
            first = owner * block + start  # the row of the split this part starts at
            kept = min(len(part), shape[0] - first)  # the last block's wrapped-around rows are not written
            if out is not None and kept > 0:
                out[first: first + kept] = part[:kept].cpu().numpy()
        start += len(tokens)
    if start != block:
        raise RuntimeError(f"the loader gave {start} images of {split.name}, expected {block}")


def text_classifier(clip, class_names, templates, ctx, batch_size: int = 1024, device=None) -> torch.Tensor:
    """[C, D] float32 prompt-ensemble classifier on `device` (None: the run's, ctx.device), cached
    by text-encoder weights, names and templates."""
    from ltbench.models.text_classifier import build_text_classifier

    description = {
        "kind": "text_classifier",
        "weights": clip.text_fingerprint(),
        "class_names_sha256": hashlib.sha256("\n".join(class_names).encode()).hexdigest(),
        "templates": list(templates),
        "precision": ctx.precision,
    }

    def build() -> np.ndarray:
        rows = distributed.shard_rows(len(class_names))
        names = class_names if rows is None else [class_names[row] for row in rows]
        classifier = build_text_classifier(clip, names, templates, batch_size, autocast=ctx.autocast,
                                           progress=ctx.show_progress).float()
        return distributed.gather_rows(classifier, len(class_names)).cpu().numpy()

    return as_tensor_on(ctx.cache.get_or_compute(description, build), ctx.device if device is None else device)
