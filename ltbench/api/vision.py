"""Vision-only timm classifiers trained on a dataset (TACKLE's student), their preprocessing and
the labels papers give them (RX50, DeiT-S)."""
from ltbench.models.factory import create_timm_classifier, timm_eval_transform, timm_label

__all__ = ["create_timm_classifier", "timm_eval_transform", "timm_label"]
