"""Parameter-efficient fine-tuning of a frozen CLIP ViT tower (AdaptFormer, LoRA, VPT, SSF, BitFit,
adapters): LIFT's family."""
from ltbench.models.peft import PEFT_TYPES, PeftViT, check_peft_options, text_head_weights

__all__ = ["PEFT_TYPES", "PeftViT", "check_peft_options", "text_head_weights"]
