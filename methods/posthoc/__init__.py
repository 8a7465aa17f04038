"""Post-hoc baselines on any run, no training: logit adjustment (Menon et al. ICLR 2021),
tau-normalisation of a saved linear head (Kang et al. ICLR 2020) and prior correction to a known
target prior, on the saved logits of a finished run (``--save-logits``) or of a method computed
in the run.

Registered names: `posthoc_la`, `posthoc_taunorm`, `posthoc_prior`; their settings live in
benchmarks/methods/posthoc_*.yaml.
"""
from ltbench.methods.posthoc.method import PosthocLogitAdjustment, PosthocPriorCorrection, PosthocTauNorm

__all__ = ["PosthocLogitAdjustment", "PosthocPriorCorrection", "PosthocTauNorm"]
