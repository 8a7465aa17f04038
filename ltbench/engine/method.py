"""The base class of every method plug-in.

A method is registered with ``@METHODS.register_module(name=...)``; its docstring's first line
is its description in ``ltbench list methods``. The harness calls ``fit`` once, then
``predict`` on the evaluation split (and on val), and turns the logits into metrics.
"""
import numpy as np

from ltbench.data.base import LTDataset, Split


class Method:
    # Defaults below benchmarks/methods/<name>.yaml; plug-ins outside this repo put theirs here.
    default_config: dict = {}

    def __init__(self, cfg: dict):
        self.cfg = cfg

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
