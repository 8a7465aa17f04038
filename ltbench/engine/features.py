"""Image features of a whole split through a frozen encoder, batched, cached by content."""
import hashlib

import numpy as np
import torch
from tqdm.auto import tqdm

from ltbench.data.loading import image_loader


@torch.no_grad()
def extract_image_features(encoder, split, transform, batch_size: int, ctx, desc: str = "features"):
    """[N, D] float32 L2-normalised features, in split order."""
    loader = image_loader(split, transform, batch_size, num_workers=ctx.num_workers,
                          pin_memory=ctx.device.type == "cuda")
    chunks = []
    for images, _ in tqdm(loader, desc=desc, disable=not ctx.progress, leave=False):
        images = images.to(ctx.device, non_blocking=True)
        if ctx.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with ctx.autocast():
            chunks.append(encoder.encode_images(images).float().cpu())
    return torch.cat(chunks).numpy()


def image_features(encoder, split, ctx, batch_size: int, transform=None) -> np.ndarray:
    """Features of `split` from the cache, encoding the images only on a miss.

    The key holds everything that decides the numbers: the encoder's weights (a hash of its
    tensors, so a fine-tuned model never reuses the features of its base), the transform, the
    split's contents, and the precision used.
    """
    transform = transform or encoder.eval_transform
    description = {
        "kind": "image_features",
        "weights": encoder.visual_fingerprint(),
        "transform": transform.fingerprint(),
        "split": split.fingerprint,
        "precision": ctx.precision,
    }
    return ctx.cache.get_or_compute(
        description,
        lambda: extract_image_features(encoder, split, transform, batch_size, ctx,
                                       desc=f"encode {split.name}"),
    )


def text_classifier(clip, class_names, templates, ctx, batch_size: int = 1024) -> torch.Tensor:
    """[C, D] prompt-ensemble classifier, cached by text-encoder weights, names and templates."""
    from ltbench.models.text_classifier import build_text_classifier

    description = {
        "kind": "text_classifier",
        "weights": clip.text_fingerprint(),
        "class_names_sha256": hashlib.sha256("\n".join(class_names).encode()).hexdigest(),
        "templates": list(templates),
        "precision": ctx.precision,
    }
    array = ctx.cache.get_or_compute(
        description,
        lambda: build_text_classifier(clip, class_names, templates, batch_size,
                                      autocast=ctx.autocast, progress=ctx.progress).cpu().numpy(),
    )
    return torch.from_numpy(np.array(array, dtype=np.float32))
