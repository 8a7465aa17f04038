"""The single door to open_clip and timm: backbones by name, and timm classifiers for
vision-only methods (TACKLE's student)."""
from ltbench.core.errors import UserError
from ltbench.models.backbones import parse_backbone
from ltbench.models.timm_backbones import create_timm_classifier, timm_eval_transform, timm_label

__all__ = ["create_backbone", "create_clip_backbone", "create_timm_classifier", "timm_eval_transform", "timm_label",
           "list_pretrained_backbones", "backbone_details"]


def create_backbone(name: str, device="cpu"):
    """A ClipModel (open_clip, `tiny`) or a TimmEncoder (`timm:NAME`), in eval mode on `device`."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        from ltbench.models.timm_backbones import create_timm_encoder

        return create_timm_encoder(spec, device)
    from ltbench.models.clip import create_clip

    return create_clip(spec, device)


def create_clip_backbone(name: str, device, needed_by: str):
    """A CLIP model for a method that needs its text encoder (`needed_by` names the method)."""
    encoder = create_backbone(name, device)
    if not encoder.is_clip:
        raise UserError(f"method '{needed_by}' needs a CLIP backbone with a text encoder, got '{name}'")
    return encoder


def list_pretrained_backbones():
    """[(MODEL:TAG, description)] for every open_clip model with pretrained weights."""
    from ltbench.models.clip import list_open_clip_backbones

    return list_open_clip_backbones()


def backbone_details(name: str) -> dict:
    """What a record states about how the backbone was built: its towers' activation (CLIP only)."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        return {}
    from ltbench.models.clip import activation_name, resolve_quick_gelu

    return {"activation": activation_name(resolve_quick_gelu(spec))}
