"""create_backbone: the single door from a backbone name to an image encoder."""
from ltbench.errors import UserError
from ltbench.models.backbones import parse_backbone

# backbone.activation: how the activation of open_clip's towers is chosen. 'pretrained': as the
# weights were trained (the pretrained tag's config; the model config for a checkpoint). The one
# rule today; the key exists so that records made before it (open_clip's nn.GELU default for the
# OpenAI tags) never share a config hash with records made after.
ACTIVATION_RULES = ("pretrained",)


def create_backbone(name: str, device="cpu"):
    """A ClipModel (open_clip, `tiny`) or a TimmEncoder (`timm:NAME`), in eval mode on `device`."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        from ltbench.models.timm_backbones import create_timm_encoder

        return create_timm_encoder(spec, device)
    from ltbench.models.clip import create_clip

    return create_clip(spec, device)


def check_activation_rule(rule):
    if rule not in ACTIVATION_RULES:
        raise UserError(f"backbone.activation '{rule}': the only rule is 'pretrained' (as the weights "
                        f"were trained; use a '-quickgelu' model name to build QuickGELU for a checkpoint)")


def backbone_details(name: str) -> dict:
    """What a record states about how the backbone was built: its towers' activation (CLIP only)."""
    spec = parse_backbone(name)
    if spec.family == "timm":
        return {}
    from ltbench.models.clip import activation_name, resolve_quick_gelu

    return {"activation": activation_name(resolve_quick_gelu(spec))}
