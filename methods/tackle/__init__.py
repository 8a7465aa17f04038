"""TACKLE (Ma et al., "Unleashing the Potential of Vision-Language Models for Long-Tailed Visual
Recognition"): CLIP pseudo-labels an unlabeled pool for tail classes, and a vision-only timm
backbone trains on the enriched train set, optionally ensembled with CLIP."""
from ltbench.methods.tackle.method import Tackle

__all__ = ["Tackle"]
