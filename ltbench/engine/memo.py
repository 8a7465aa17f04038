"""Values a method computes once per split and run (features, logits), keyed by the split's
content fingerprint, so val and the evaluation split are never encoded twice in one run."""
from typing import Callable, Dict


class PerSplit:
    """``compute(split)`` once per split and run: a callable that keeps each split's value by the
    split's content fingerprint (features, logits), so val and the evaluation split are never
    computed twice."""

    def __init__(self, compute: Callable):
        self.compute = compute
        self.values: Dict[str, object] = {}

    def __call__(self, split):
        if split.fingerprint not in self.values:
            self.values[split.fingerprint] = self.compute(split)
        return self.values[split.fingerprint]
