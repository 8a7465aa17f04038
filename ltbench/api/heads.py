"""Classifier heads (linear, cosine, text-initialised) and the float32 rule: heads and every logit
a run records compute in float32, under bf16 autocast too. Used by every method with a head of
its own (linear probe, clip_finetune, LIFT, the decoder, BALLAD's adapter, prompt tuning)."""
from ltbench.models.heads import Float32Linear, build_head, float32_forward, no_autocast

__all__ = ["build_head", "Float32Linear", "float32_forward", "no_autocast"]
