"""The base class of every method plug-in.

A method is registered with ``@METHODS.register_module(name=...)``; its docstring's first line
is its description in ``ltbench list methods``. The harness builds it from the resolved config
(before any data is loaded), calls ``fit`` once, then ``predict`` on the evaluation split (and on
val), and turns the logits into metrics.
"""
from abc import ABC, abstractmethod

import numpy as np

from ltbench.config.options import merged_options
from ltbench.data.base import LTDataset, Split
from ltbench.engine.options import COMMON


class Method(ABC):
    """A method plug-in: subclass it, register it, declare its options, implement ``fit`` and ``predict``.

    ``options`` declares the options a method's config may hold (``Option`` / ``Section`` of
    ``ltbench.api.options``): a subclass's own add to those of its bases, so every method has the
    common ones (``seed``, ``backbone``, ``batch_size``, ``runtime``, ...: ``COMMON``), and a
    plug-in that trains declares ``"train": TRAINING`` instead of repeating the trainer's keys.

    ``self.cfg`` is the run's resolved config, a plain dict built once before the method is, with
    every declared option and its value (later wins): the options' declared defaults, ltbench's
    defaults (benchmarks/defaults.yaml), the dataset's YAML, the method's
    ``methods/<name>.yaml`` on the config search path (a plug-in's own folder too:
    ``add_config_path``) with that file's ``per_dataset`` / ``per_backbone`` sections for this
    run, then the command line's flags and ``--cfg-options`` (docs/configuration.md). It always
    holds ``method`` (the registered name), ``dataset`` (the dataset's options,
    ``dataset["name"]`` its name), ``backbone`` (``backbone["clip"]``: the ``--backbone`` name,
    for ``create_backbone`` / ``create_clip_backbone``) and ``seed``. Unknown keys and values an
    option does not take never reach a method: the resolver refuses them first.

    ``__init__`` runs before any data is loaded: check what needs more than the options there (a
    ``UserError`` stops the run before any work). ``fit(data, ctx)`` trains or builds the model;
    ``predict(split, ctx)`` returns the logits. ``ctx`` is the run's ``RunContext`` (device, seed,
    cache, trainer, timers, log) and takes what the run reports besides the logits
    (``ctx.outputs``, ``ctx.report``).
    """

    options = COMMON

    def __init__(self, cfg: dict):
        # The run's resolved config: every declared option with its value (docs/configuration.md).
        self.cfg = cfg

    # --- what the harness asks of a method's class, from the resolved config alone (no model built) ---

    @classmethod
    def declared_options(cls):
        """Every option of this method (a Section): its class's own over those of its bases."""
        return merged_options(reversed(cls.__mro__))

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

    @classmethod
    def source_records(cls, cfg: dict) -> list:
        """The run records (paths of .json files) whose saved logits or artifacts a run of `cfg`
        reads: a post-hoc source, an ensemble's saved members. The record names each with the
        SHA-256 of its file, so ``--skip-existing`` recomputes a run whose source was redone.
        Default: none."""
        return []

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
