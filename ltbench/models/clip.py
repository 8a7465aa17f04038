"""The one wrapper around open_clip: model creation, weights, transforms, tokenizer, encoders."""
from functools import lru_cache
from pathlib import Path
from typing import List

import torch
import torch.nn.functional as F

from ltbench.data.transforms import TransformSpec
from ltbench.errors import UserError, unknown_name
from ltbench.models.backbones import BackboneSpec, ImageEncoder, first_line_of, quiet_logging
from ltbench.models.fingerprint import MemoizedFingerprint

CONFIG_DIR = Path(__file__).parent / "configs"


@lru_cache(maxsize=None)
def _open_clip():
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)  # registers ltbench-tiny
    return open_clip


def list_open_clip_backbones():
    """[(MODEL:TAG, description)] for every open_clip model with pretrained weights."""
    return [(f"{model}:{tag}", f"open_clip {model}, pretrained '{tag}'")
            for model, tag in _open_clip().list_pretrained()]


def _is_visual(name: str) -> bool:
    return name.startswith("visual.")


def _is_text(name: str) -> bool:
    return not name.startswith("visual.") and not name.startswith("logit_")


class ClipModel(ImageEncoder):
    """An open_clip CLIP model with L2-normalised image / text encoders and its eval transform."""

    is_clip = True

    def __init__(self, model: torch.nn.Module, tokenizer, spec: BackboneSpec):
        super().__init__(model, spec)
        self.tokenizer = tokenizer
        self.visual_fingerprint = MemoizedFingerprint(model, _is_visual)
        self.text_fingerprint = MemoizedFingerprint(model, _is_text)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") \
            else int(self.model.visual.output_dim)

    @property
    def eval_transform(self) -> TransformSpec:
        cfg = self.model.visual.preprocess_cfg
        size = cfg["size"]
        size = size[0] if isinstance(size, (tuple, list)) else size
        return TransformSpec(size=int(size), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                             interpolation=cfg.get("interpolation", "bicubic"))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images).float(), dim=-1)

    def tokenize(self, texts: List[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def encode_texts(self, texts: List[str]) -> torch.Tensor:
        tokens = self.tokenize(texts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


def create_clip(spec: BackboneSpec, device="cpu") -> ClipModel:
    """Build an open_clip model from a parsed backbone name; every failure is a one-line UserError."""
    open_clip = _open_clip()
    models = open_clip.list_models()
    if spec.model not in models:
        raise unknown_name("backbone model", spec.model, models, listing="backbones")
    weights = spec.weights
    if weights is not None and not spec.is_checkpoint:
        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        if weights not in tags:
            hint = f"known tags: {', '.join(tags)}" if tags else "it has no pretrained tags"
            raise UserError(f"backbone '{spec.text}': unknown pretrained tag '{weights}' for "
                            f"{spec.model} ({hint}); or use {spec.model}:none or a checkpoint path")
    try:
        with quiet_logging():
            model, _, _ = open_clip.create_model_and_transforms(spec.model, pretrained=weights,
                                                                device=device)
    except Exception as error:  # network, hub cache, or a checkpoint of another architecture
        reason = first_line_of(error)
        if spec.is_checkpoint:
            raise UserError(f"backbone '{spec.text}': could not load checkpoint {weights} into "
                            f"{spec.model}: {reason}") from None
        raise UserError(
            f"backbone '{spec.text}': could not fetch pretrained weights '{weights}' ({reason}); "
            f"connect to the internet or fill the Hugging Face cache, or use '{spec.model}:none' for "
            f"random init or '{spec.model}:/path/to/checkpoint.pt' for local weights"
        ) from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.model)
    return ClipModel(model, tokenizer, spec)
