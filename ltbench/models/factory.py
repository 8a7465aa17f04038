"""create_backbone: the single door from a backbone name to an image encoder."""
from ltbench.models.backbones import parse_backbone



def create_backbone(name: str, device="cpu"):
    """A ClipModel (open_clip, `tiny`) or a TimmEncoder (`timm:NAME`), in eval mode on `device`."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        from ltbench.models.timm_backbones import create_timm_encoder

        return create_timm_encoder(spec, device)
    from ltbench.models.clip import create_clip

    return create_clip(spec, device)


def backbone_details(name: str) -> dict:
    """What a record states about how the backbone was built: its towers' activation (CLIP only)."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        return {}
    from ltbench.models.clip import activation_name, resolve_quick_gelu

    return {"activation": activation_name(resolve_quick_gelu(spec))}
