"""Classification losses, registered in LOSSES.

Each loss is a small function ``loss(logits, targets, class_counts, **options) -> scalar``, so
imbalance-aware losses (which need the training class counts) and plain ones share one call.
"""
import torch
import torch.nn.functional as F

from ltbench.registry import LOSSES


@LOSSES.register_module(name="ce")
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, class_counts=None) -> torch.Tensor:
    """Cross-entropy (softmax over classes, mean over the batch)."""
    return F.cross_entropy(logits.float(), targets)


def multi_positive_contrastive(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE over an image-text similarity matrix (BALLAD phase A).

    logits[i, j] = scale * cos(image i, text j), with text j the prompt of image j's class, so
    image i's positives are the texts j with labels[j] == labels[i] (itself included) and text j's
    positives the images of its class. Each direction averages -log softmax over an anchor's
    positives, then over anchors; the loss is the sum of the two directions (the paper's
    L = L_{v->l} + L_{l->v}). Not a registered classification loss: its logits are [B, B].
    """
    logits = logits.float()
    positives = (labels[:, None] == labels[None, :]).float()
    per_positive = positives / positives.sum(dim=1, keepdim=True)  # symmetric mask: same counts per column
    image_to_text = -(per_positive * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(per_positive * F.log_softmax(logits, dim=0)).sum(dim=0).mean()
    return image_to_text + text_to_image


def build_loss(spec):
    """A callable (logits, targets, class_counts) from a name or {'type': name, **options}."""
    from functools import partial

    from ltbench import registry

    if isinstance(spec, str):
        spec = {"type": spec}
    options = dict(spec)
    loss_fn = registry.get(LOSSES, options.pop("type"))
    return partial(loss_fn, **options) if options else loss_fn
