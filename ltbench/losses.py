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


def build_loss(spec):
    """A callable (logits, targets, class_counts) from a name or {'type': name, **options}."""
    from functools import partial

    from ltbench import registry

    if isinstance(spec, str):
        spec = {"type": spec}
    options = dict(spec)
    loss_fn = registry.get(LOSSES, options.pop("type"))
    return partial(loss_fn, **options) if options else loss_fn
