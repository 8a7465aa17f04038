"""A registered method fitted inside another method's run: an ensemble member, a post-hoc source."""
import numpy as np

from ltbench.config import related_method_config
from ltbench.core import registry


class ComputedMethod:
    """`name` configured as its own run of this dataset, backbone and seed would be (plus
    `cfg_options`), fitted with a context of its own: its extra metrics and details stay out of
    the caller's record, its work folder sits beside the caller's (so stages it shares by hash
    with its own runs, like BALLAD's phase A, are found), and its artifacts join the caller's
    record as '<name>.<artifact>'."""

    def __init__(self, name: str, cfg: dict, cfg_options=()):
        self.name = name
        self.config = related_method_config(name, cfg, cfg_options)
        self.method = registry.get(registry.METHODS, name)(self.config)
        self.ctx = None

    def fit(self, data, ctx):
        self.ctx = ctx.for_part(self.name)
        self.method.fit(data, self.ctx)
        ctx.outputs.artifacts.update({f"{self.name}.{key}": value for key, value in self.ctx.outputs.artifacts.items()})

    def logits(self, split) -> np.ndarray:
        return np.asarray(self.method.predict(split, self.ctx))
