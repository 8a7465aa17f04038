"""The plug-in API: what a method plug-in imports (``ltbench.methods`` and third-party packages
alike; import-linter holds the built-in ones to ``ltbench.api`` and its sub-modules).

A method subclasses ``Method``, registers with ``@METHODS.register_module(name=...)`` and
implements ``fit(data, ctx)`` and ``predict(split, ctx)`` (``Method``'s docstring says what
``self.cfg`` holds and what they return); ``ctx`` (a ``RunContext``) gives the device, seed,
cache, timers, the trainer (``ctx.trainer(section).fit(...)``) and the run's log, and takes what
the run reports. A dataset builder registers with ``@DATASETS.register_module(name=...)`` and
returns an ``LTDataset`` of splits (docs/adding-a-dataset.md); ``add_config_path`` adds a
plug-in's folder of YAML files (``datasets/<name>.yaml``, ``methods/<name>.yaml``) to the config
search path.

This core holds what most methods need; the toolkits of method families live in sub-modules:
``ltbench.api.options`` (the shared sections a method declares its options with besides
``TRAINING``; error wording), ``.calibration`` (second stages, tau-normalisation, choices on val,
saved linear heads, work a chunk of rows at a time), ``.ensembles`` (logits of saved runs and
computed methods, ensembles), ``.finetune`` (CLIP fine-tuning), ``.peft`` (PEFT of a ViT tower),
``.heads`` (classifier heads in float32), ``.images`` (own image pipelines, test-time crops,
last-layer tokens), ``.pools`` (unlabeled pools, shot groups), ``.vision`` (timm classifiers) and
``.training`` (beyond the core loop). Everything a plug-in needs is named here or there, so that
the framework's modules can move without breaking plug-ins. docs/architecture.md lists every
name (a table generated from the ``__all__`` lists: ``.ci/api-table --write``).
"""
from ltbench.config import add_config_path
from ltbench.config.options import Option, Section
from ltbench.core.errors import UserError, unknown_name
from ltbench.core.registry import DATASETS, METHODS, register_variant
from ltbench.core.seeding import seeded
from ltbench.data.base import ArraySplit, LTDataset, Split
from ltbench.data.prompts import templates_by_name
from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import TensorBatches
from ltbench.engine.context import RunContext
from ltbench.engine.features import image_features, text_classifier
from ltbench.engine.hooks import BestOnVal, Hook, TrainingProgress
from ltbench.engine.method import Method
from ltbench.engine.options import TRAINING
from ltbench.engine.stages import Stage
from ltbench.engine.trainer import Trainer
from ltbench.losses import build_loss
from ltbench.models.factory import create_backbone, create_clip_backbone
from ltbench.models.protocols import Backbone, ClipBackbone

__all__ = [
    # a method, its options and its run
    "Method", "Option", "Section", "METHODS", "register_variant", "RunContext", "UserError", "unknown_name",
    # datasets and splits; a plug-in's own folder of YAML files
    "DATASETS", "LTDataset", "Split", "ArraySplit", "add_config_path",
    # backbones, features, text classifiers
    "Backbone", "ClipBackbone", "create_backbone", "create_clip_backbone", "image_features", "text_classifier",
    "templates_by_name",
    # training: losses, samplers, batches, the trainer and its hooks, stages
    "TRAINING", "build_loss", "build_sampler", "TensorBatches", "Trainer", "Hook", "TrainingProgress",
    "BestOnVal", "Stage", "seeded",
]
