"""LIFT (Shi et al., ICML 2024, "Long-Tail Learning with Foundation Model: Heavy Fine-Tuning Hurts").

A frozen CLIP ViT image tower with lightweight PEFT modules (AdaptFormer by default; the other
families of the paper's comparison behind ``peft.type``, ltbench/models/peft.py), a cosine
classifier initialised from the class text features, the logit-adjusted loss, and optional
test-time ensembling over crops.
"""
from ltbench.methods.lift.method import Lift

__all__ = ["Lift"]
