"""LIFT (Shi et al., ICML 2024, "Long-Tail Learning with Foundation Model: Heavy Fine-Tuning Hurts")
and LIFT+ (Shi, Wei, Li 2025, "LIFT+: Lightweight Fine-Tuning for Long-Tail Learning").

A frozen ViT image tower (CLIP's, or a timm ViT) with lightweight PEFT modules (AdaptFormer by
default; the other families of the papers' comparisons behind ``peft.type``,
ltbench/models/peft.py), a cosine classifier initialised from the class text features (or the
class means of the training features without a text tower), the logit-adjusted loss, and optional
test-time ensembling over crops. Registered names: `lift` and `lift_plus`, one method family whose
settings live in benchmarks/methods/lift.yaml and lift_plus.yaml (which names lift.yaml as base):
LIFT+ adds the minimalist data augmentation (augment.kind minimalist, ltbench/data/minimalist_crop.py)
and trains 5 epochs at lr 0.02.
"""
from ltbench.api import register_variant
from ltbench.methods.lift.method import Lift

__all__ = ["Lift"]

register_variant(Lift, "lift_plus", "LIFT+: LIFT with minimalist data augmentation (square crops, minimum scale "
                 "rising per epoch), 5 epochs at lr 0.02, bicubic, LIFT+'s test resize; AFT as peft.type aft.")
