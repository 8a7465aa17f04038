"""Backbone names: what `--backbone` accepts.

- ``tiny``: a tiny CLIP shipped with ltbench, random init (offline runs and tests);
- ``MODEL:TAG``: an open_clip model with pretrained weights ``TAG`` (``RN50:openai``,
  ``ViT-B-16:openai``), ``MODEL:none`` for random init, ``MODEL:/path/to/checkpoint.pt`` for
  local weights;
- ``timm:NAME`` (ImageNet weights from timm) or ``timm:NAME:none``: a vision-only timm model.
"""
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ltbench.core.errors import UserError
from ltbench.models.trainable import set_visual_trainable, visual_blocks

TINY = "tiny"
TINY_MODEL = "ltbench-tiny"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class BackboneSpec:
    family: str  # 'open_clip' or 'timm'
    model: str
    weights: Optional[str]  # pretrained tag, checkpoint path, or None for random init
    text: str  # as the user wrote it; the run record's backbone label

    @property
    def is_checkpoint(self) -> bool:
        return self.weights is not None and _looks_like_path(self.weights)


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith(CHECKPOINT_SUFFIXES)


def parse_backbone(text: str) -> BackboneSpec:
    text = str(text).strip()
    if text == TINY:
        return BackboneSpec("open_clip", TINY_MODEL, None, text)
    if text.startswith("timm:"):
        name, _, weights = text[len("timm:"):].partition(":")
        if not name:
            raise UserError(f"backbone '{text}': expected timm:NAME or timm:NAME:none")
        if weights not in ("", "none", "pretrained"):
            raise UserError(f"backbone '{text}': the timm weights part must be 'none' or left out")
        return BackboneSpec("timm", name, None if weights == "none" else "pretrained", text)
    model, sep, weights = text.partition(":")
    if not sep or not model or not weights:
        raise UserError(
            f"backbone '{text}': expected MODEL:PRETRAINED such as RN50:openai or ViT-B-16:openai, "
            f"MODEL:none for random init, MODEL:/path/to/checkpoint.pt, 'tiny', or timm:NAME"
        )
    if weights == "none":
        return BackboneSpec("open_clip", model, None, text)
    if _looks_like_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"backbone '{text}': checkpoint file not found: {path}")
        return BackboneSpec("open_clip", model, str(path.resolve()), text)
    return BackboneSpec("open_clip", model, weights, text)


class ImageEncoder:
    """The Backbone operations every backbone shares (models/protocols.py): the subclasses,
    ClipModel and TimmEncoder, add the encoders, the eval transform and their image tower."""

    is_clip = False

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec):
        self.model, self.spec = model, spec

    @property
    def label(self) -> str:
        return self.spec.text

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device):
        self.model.to(device)
        return self

    def freeze(self):
        self.model.eval().requires_grad_(False)
        return self

    def visual_tower(self) -> torch.nn.Module:
        raise NotImplementedError

    def visual_blocks(self) -> list:
        return visual_blocks(self.visual_tower())

    def trainable(self, scope: str, last_blocks: int = 0, key: str = "trainable") -> int:
        return set_visual_trainable(self.visual_tower(), scope, last_blocks, key)


# Loggers whose records while a model is built are only the hub's download retries and HTTP
# noise; a failed download still surfaces, as ltbench's one-line UserError.
HUB_NOISE_LOGGERS = ("huggingface_hub", "urllib3")


class _DropExpected(logging.Filter):
    """Drops root-logger records that start with one of ``prefixes``: news the user asked for."""

    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def quiet_hub_retries(expected=()):
    """Silence the Hugging Face hub's retry / HTTP logging while a model is built, and the
    root-logger lines that start with one of ``expected`` (open_clip's "No pretrained weights
    loaded" when random init was asked for).

    Nothing else: open_clip and timm warnings (a QuickGELU mismatch, missing or unexpected
    checkpoint keys) concern the model's correctness and must reach the user.
    """
    loggers = [logging.getLogger(name) for name in HUB_NOISE_LOGGERS]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    drop = _DropExpected(expected)
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        for logger, level in zip(loggers, previous):
            logger.setLevel(level)
