"""Vision-only backbones from timm, with the same encoder interface as ClipModel."""
import torch
import torch.nn.functional as F

from ltbench.core.errors import UserError, first_line_of, unknown_name
from ltbench.data.transforms import TransformSpec
from ltbench.models.backbones import BackboneSpec, ImageEncoder, quiet_hub_retries
from ltbench.models.fingerprint import MemoizedFingerprint
from ltbench.models.heads import float32_classifier
from ltbench.models.weights import weights_available


class TimmEncoder(ImageEncoder):
    """A timm model without its classifier; features are pooled and L2-normalised."""

    def __init__(self, model: torch.nn.Module, spec: BackboneSpec):
        super().__init__(model, spec)
        self.visual_fingerprint = MemoizedFingerprint(model)

    @property
    def embed_dim(self) -> int:
        return int(self.model.num_features)

    @property
    def eval_transform(self) -> TransformSpec:
        return timm_eval_transform(self.model)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(images).float(), dim=-1)

    def visual_tower(self) -> torch.nn.Module:
        return self.model


# What papers (and benchmarks/reported.yaml) call the vision backbones of the long-tailed literature; a run of a
# timm model records this label, so leaderboards show 'RX50' as the papers do.
PAPER_LABELS = {"resnet50": "RN50", "resnet152": "RN152", "resnext50_32x4d": "RX50",
                "resnext101_32x4d": "RX101", "deit_small_patch16_224": "DeiT-S"}


def timm_label(name: str) -> str:
    """'timm:resnext50_32x4d' or 'resnext50_32x4d' -> 'RX50'; other models keep their timm name."""
    name = name[len("timm:"):] if name.startswith("timm:") else name
    return PAPER_LABELS.get(name, name)


def timm_eval_transform(model: torch.nn.Module, input_size: int = None) -> TransformSpec:
    """The model's own preprocessing (timm's pretrained_cfg); ``input_size`` overrides its size."""
    cfg = model.pretrained_cfg
    size = int(input_size or cfg.get("input_size", (3, 224, 224))[-1])
    return TransformSpec(size=size, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                         std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                         interpolation=cfg.get("interpolation", "bicubic"))


def check_timm_name(name: str):
    """A one-line UserError for a model name timm does not know."""
    import timm

    if not timm.is_model(name):
        raise unknown_name("timm model", name, timm.list_models(), listing="backbones")


def _create_timm_model(name: str, pretrained: bool, label: str, random_init_hint: str, **kwargs) -> torch.nn.Module:
    import timm

    check_timm_name(name)
    spec = BackboneSpec("timm", name, "pretrained" if pretrained else None, f"timm:{name}")
    try:
        # Cached weights load without a request; missing ones fail here at once when offline.
        with weights_available(spec), quiet_hub_retries():
            return timm.create_model(name, pretrained=pretrained, **kwargs)
    except UserError:
        raise
    except Exception as error:  # network or hub cache
        raise UserError(f"backbone '{label}': could not fetch timm weights ({first_line_of(error)}); "
                        f"connect to the internet or fill the Hugging Face cache, or {random_init_hint}") from None


def create_timm_encoder(spec: BackboneSpec, device="cpu") -> TimmEncoder:
    model = _create_timm_model(spec.model, spec.weights is not None, spec.text,
                               f"use 'timm:{spec.model}:none' for random init", num_classes=0)
    return TimmEncoder(model.to(device).eval(), spec)


def create_timm_classifier(name: str, num_classes: int, pretrained: bool, device="cpu") -> torch.nn.Module:
    """A timm model with a fresh ``num_classes``-way head, for training on a dataset; ``name``
    is a timm model name, with or without a 'timm:' prefix. Its classifier (a linear layer in
    every timm classification model) computes in float32 under autocast (models/heads.py)."""
    name = name[len("timm:"):] if name.startswith("timm:") else name
    model = _create_timm_model(name, pretrained, name, "set vision.pretrained=false for random init",
                               num_classes=num_classes)
    return float32_classifier(model, model.get_classifier()).to(device)
