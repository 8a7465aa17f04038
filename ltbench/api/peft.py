"""Parameter-efficient fine-tuning of a frozen ViT tower, CLIP's or timm's (AdaptFormer, LoRA, VPT,
SSF, BitFit, adapters, LIFT+'s arbitrary fine-tuning), and the choices of LIFT+'s variants of
their inits and placements: LIFT's family."""
from ltbench.models.peft import (
    AFT_LOCS,
    DOWN_INITS,
    PEFT_TYPES,
    VPT_INITS,
    VPT_POSITIONS,
    PeftViT,
    check_peft_options,
    text_head_weights,
)

__all__ = ["PEFT_TYPES", "DOWN_INITS", "VPT_POSITIONS", "VPT_INITS", "AFT_LOCS", "PeftViT", "check_peft_options",
           "text_head_weights"]
