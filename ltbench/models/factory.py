"""The single door to open_clip and timm: backbones by name, and timm classifiers for
vision-only methods (TACKLE's student)."""
from ltbench.core.errors import UserError
from ltbench.core.seeding import global_rng_seeded_with
from ltbench.models.backbones import parse_backbone
from ltbench.models.timm_backbones import create_timm_classifier, timm_eval_transform, timm_label

__all__ = ["create_backbone", "create_clip_backbone", "create_timm_classifier", "timm_eval_transform", "timm_label",
           "list_pretrained_backbones", "backbone_details"]


# A random-init backbone (`tiny`, `MODEL:none`, `timm:NAME:none`) is a fixed model named by its
# architecture, as a pretrained one is named by its tag: its weights are what torch's global RNG
# seeded with BACKBONE_INIT_SEED gives, never the run's seed or whatever ran before in the
# process (another backbone, a cold cache). So every method and every seed of a comparison sees
# the same encoder (and shares its feature cache). 0 (used as is, not derived): the backbone that
# runs with seed 0 built before this rule, so their recorded digits_lt numbers stay valid.
BACKBONE_INIT_SEED = 0


def create_backbone(name: str, device="cpu"):
    """A ClipModel (open_clip, `tiny`) or a TimmEncoder (`timm:NAME`), in eval mode on `device`.

    Built with the global RNG seeded with BACKBONE_INIT_SEED, then put back as the caller had it
    (building a pretrained model draws too, before its weights are loaded)."""
    spec = parse_backbone(name)
    with global_rng_seeded_with(BACKBONE_INIT_SEED):
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
