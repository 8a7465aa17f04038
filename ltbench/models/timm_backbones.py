"""Vision-only backbones from timm, with the same encoder interface as ClipModel."""
import torch
import torch.nn.functional as F

from ltbench.data.transforms import TransformSpec
from ltbench.errors import UserError, unknown_name
from ltbench.models.backbones import BackboneSpec, ImageEncoder, first_line_of, quiet_logging
from ltbench.models.fingerprint import MemoizedFingerprint


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
        cfg = self.model.pretrained_cfg
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        return TransformSpec(size=size, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                             std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                             interpolation=cfg.get("interpolation", "bicubic"))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(images).float(), dim=-1)


def create_timm_encoder(spec: BackboneSpec, device="cpu") -> TimmEncoder:
    import timm

    if not timm.is_model(spec.model):
        raise unknown_name("timm model", spec.model, timm.list_models(), listing="backbones")
    try:
        with quiet_logging():
            model = timm.create_model(spec.model, pretrained=spec.weights is not None, num_classes=0)
    except Exception as error:  # network or hub cache
        raise UserError(f"backbone '{spec.text}': could not fetch timm weights ({first_line_of(error)}); "
                        f"connect to the internet or fill the Hugging Face cache, or use "
                        f"'timm:{spec.model}:none' for random init") from None
    return TimmEncoder(model.to(device).eval(), spec)
