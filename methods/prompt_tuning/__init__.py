"""CoOp prompt tuning (Zhou et al., IJCV 2022), one of Imbalance-VLM's ways to adapt CLIP to a
long-tailed train set: learnt context vectors replace the prompt's words, both encoders frozen.

Registered names: `prompt_tuning` (loss from config, CE default) and `prompt_tuning_bs`
(Balanced Softmax). Settings in benchmarks/methods/prompt_tuning*.yaml. The learnt context is
a stage (results/work/prompt_tuning__...): a rerun reuses it, and `context.checkpoint` loads
one for evaluation.
"""
from ltbench.api import METHODS, register_variant
from ltbench.methods.prompt_tuning.method import PromptTuning

__all__ = ["PromptTuning"]



METHODS.register_module(name="prompt_tuning", module=PromptTuning)
register_variant(PromptTuning, "prompt_tuning_bs", "CoOp prompt tuning on frozen CLIP with Balanced Softmax (CE on z + log p_c).")
