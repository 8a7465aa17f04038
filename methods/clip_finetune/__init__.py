"""Full fine-tuning of CLIP's image encoder with a classification head on the long-tailed train
set: Imbalance-VLM's (Wang et al. 2023) fine-tuning baseline.

Registered names: `clip_finetune` (loss from config, CE by default) and `clip_finetune_bs`
(Balanced Softmax). Their settings live in benchmarks/methods/clip_finetune*.yaml
(clip_finetune_bs.yaml names clip_finetune.yaml as base). The training loop, the augmented
image batches and the choice of trainable encoder parameters are the framework's, shared with
BALLAD's phase A (ltbench/engine/finetune.py, ltbench/models/clip_finetune.py).
"""
from ltbench.api import METHODS, register_variant
from ltbench.methods.clip_finetune.method import ClipFineTune

__all__ = ["ClipFineTune"]

METHODS.register_module(name="clip_finetune", module=ClipFineTune)
register_variant(ClipFineTune, "clip_finetune_bs",
                 "Full CLIP fine-tuning (image encoder + text-initialised head), Balanced Softmax (CE on z + log p_c).")
