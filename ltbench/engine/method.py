"""The base class of every method plug-in.

A method is registered with ``@METHODS.register_module(name=...)``; its docstring's first line
is its description in ``ltbench list methods``. The harness calls ``fit`` once, then
``predict`` on the evaluation split (and on val), and turns the logits into metrics.
"""
import numpy as np

from ltbench.config.options import merged_options
from ltbench.data.base import LTDataset, Split
from ltbench.engine.options import COMMON


class Method:
    # The options a method's config may hold (ltbench.config.options): a subclass's own add to
    # those of its bases, so every method has the common ones (seed, backbone, batch_size, ...).
    # Their values: an Option's default, then benchmarks/methods/<name>.yaml (or a plug-in's
    # methods/<name>.yaml on the config search path), checked before any work.
    options = COMMON

    def __init__(self, cfg: dict):
        # The run's resolved config: every declared option with its value (docs/configuration.md).
        self.cfg = cfg

    @classmethod
    def declared_options(cls):
        """Every option of this method (a Section): its class's own over those of its bases."""
        return merged_options(reversed(cls.__mro__))

    @classmethod
    def backbone_label_for(cls, cfg: dict) -> str:
        """What the leaderboard shows in its Backbone column, from the resolved config alone (the
        record's file name holds it, so `ltbench sweep --dry-run` names records without building
        a method)."""
        return str(cfg["backbone"]["clip"])

    @property
    def backbone_label(self) -> str:
        return self.backbone_label_for(self.cfg)

    def fit(self, data: LTDataset, ctx) -> None:
        """Train (or build) the model; `ctx` is an ltbench.engine.context.RunContext."""

    def predict(self, split: Split, ctx) -> np.ndarray:
        """Logits [N, num_classes] for every image of `split`, in split order."""
        raise NotImplementedError
