"""The base class of every method plug-in.

A method is registered with ``@METHODS.register_module(name=...)``; its docstring's first line
is its description in ``ltbench list methods``. The harness builds it from the resolved config
(before any data is loaded), calls ``fit`` once, then ``predict`` on the evaluation split (and on
val), and turns the logits into metrics.
"""
from abc import ABC, abstractmethod

import numpy as np

from ltbench.data.base import LTDataset, Split


class Method(ABC):
    """A method plug-in: subclass it, register it, implement ``fit`` and ``predict``.

    ``self.cfg`` is the run's resolved config, a plain dict built once before the method is (later
    wins): ltbench's defaults (benchmarks/defaults.yaml: ``seed``, ``eval_split``, ``batch_size``,
    ``eval_batch_size``, ``shot_rule``, ``amp``, ``runtime``, ...), the dataset's YAML, the method's
    ``default_config``, its ``benchmarks/methods/<name>.yaml`` with that file's ``per_dataset`` /
    ``per_backbone`` sections for this run, then the command line's flags and ``--cfg-options``
    (docs/configuration.md). It always holds ``method`` (the registered name), ``dataset`` (the
    dataset's options, ``dataset["name"]`` its name), ``backbone`` (``backbone["clip"]``: the
    ``--backbone`` name, for ``create_backbone`` / ``create_clip_backbone``) and ``seed``; the
    other keys are the defaults' and the method's own. Unknown keys never reach a method: the
    resolver refuses them first.

    ``__init__`` runs before any data is loaded: check options there (a ``UserError`` stops the run
    before any work). ``fit(data, ctx)`` trains or builds the model; ``predict(split, ctx)`` returns
    the logits. ``ctx`` is the run's ``RunContext`` (device, seed, cache, trainer, timers, log) and
    takes what the run reports besides the logits (``ctx.outputs``, ``ctx.report``).
    """

    # Defaults below benchmarks/methods/<name>.yaml; plug-ins outside this repo put theirs here.
    default_config: dict = {}

    def __init__(self, cfg: dict):
        self.cfg = cfg

    # --- what the harness asks of a method's class, from the resolved config alone (no model built) ---

    @classmethod
    def backbone_label_for(cls, cfg: dict) -> str:
        """What the leaderboard shows in its Backbone column (and the record's file name holds, so
        `ltbench sweep --dry-run` names records without building a method). Default: the
        ``--backbone`` name. Override it for a method whose model is not that backbone (a timm
        student: its paper label; an ensemble: its members' labels joined by '+')."""
        return str(cfg["backbone"]["clip"])

    @classmethod
    def saves_linear_head(cls, cfg: dict) -> bool:
        """Whether a run of `cfg` leaves its final head as the ``linear_head`` artifact
        (``ltbench.api.calibration.save_linear_head``), which posthoc_taunorm rescales; it asks
        before any work. Default: no. Override it when ``fit`` saves one."""
        return False

    @property
    def backbone_label(self) -> str:
        return self.backbone_label_for(self.cfg)

    # --- what every method implements ---

    @abstractmethod
    def fit(self, data: LTDataset, ctx) -> None:
        """Train (or build) the model on ``data`` (``data.split("train")``; ``data.split("val")``
        where ``"val" in data.splits``; ``data.class_names``, ``data.num_classes``,
        ``data.class_counts``). ``ctx``: the run's RunContext. Returns nothing: the model stays on
        ``self``."""

    @abstractmethod
    def predict(self, split: Split, ctx) -> np.ndarray:
        """Logits [len(split), data.num_classes] for every image of ``split``, in split order: a
        numpy array (float32) in host memory. Compute on ``ctx.device``; the harness calls this on
        the evaluation split and on val, so compute each split once (``PerSplit``)."""
