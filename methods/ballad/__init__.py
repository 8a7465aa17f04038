"""BALLAD (Ma et al. 2021, "A Simple Long-Tailed Recognition Baseline via Vision-Language Model").

Phase A fine-tunes CLIP on the long-tailed train set (ltbench/engine/finetune.py, shared with
TACKLE's teacher); phase B freezes the model and trains a residual adapter on the image
features with class-balanced sampling, read out by cosine similarity to the class text features.
"""
from ltbench.methods.ballad.method import Ballad

__all__ = ["Ballad"]
