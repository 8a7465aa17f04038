"""The plug-in API: the one ltbench module that method plug-ins import (``ltbench.methods`` and
third-party packages alike; import-linter enforces it for the built-in ones).

A method subclasses ``Method``, registers with ``@METHODS.register_module(name=...)`` and
implements ``fit(data, ctx)`` and ``predict(split, ctx)``; ``ctx`` (a ``RunContext``) gives the
device, seed, cache, timers, the trainer and the run's log, and takes what the run reports.
A dataset builder registers with ``@DATASETS.register_module(name=...)``: ``build(options,
require_all_splits=True) -> LTDataset`` (docs/adding-a-dataset.md); ``add_config_path`` adds a
plug-in's folder of YAML files (datasets/<name>.yaml) to the config search path.
Everything else a method needs is named here, so that the framework's modules can move without
breaking plug-ins.
"""
from ltbench.config import add_config_path, related_method_config
from ltbench.core.distributed import gather_batch
from ltbench.core.errors import UserError, first_line_of, unknown_name
from ltbench.core.registry import DATASETS, LOSSES, METHODS, SAMPLERS, register_variant
from ltbench.core.registry import get as registered
from ltbench.core.seeding import derive_seed, generator, seed_everything, seeded
from ltbench.core.values import is_real, is_whole
from ltbench.data.base import ArraySplit, FileSplit, LTDataset, Split, split_subset
from ltbench.data.crops import CROP_SETS, CropSpec, crops
from ltbench.data.loading import AUGMENT_KINDS, epoch_batches, image_loader, training_augmentation
from ltbench.data.minimalist_crop import MDA_FUNCTIONS
from ltbench.data.pool import unlabeled_pool, with_pool_images
from ltbench.data.prompts import templates_by_name
from ltbench.data.samplers import build_sampler, build_sampler_from_spec
from ltbench.data.transforms import INTERPOLATIONS, AugmentSpec, TransformSpec
from ltbench.engine.batches import ArrayRowBatches, EpochProgress, TensorBatches
from ltbench.engine.checkpoints import read_stage_checkpoint
from ltbench.engine.computed import ComputedMethod
from ltbench.engine.context import RunContext
from ltbench.engine.ensembles import ensemble_for
from ltbench.engine.features import encode_split, image_features, image_tokens, text_classifier
from ltbench.engine.finetune import clip_image_stream, clip_train_batches, fine_tune_clip
from ltbench.engine.head_artifacts import LinearHead, read_linear_head, save_linear_head
from ltbench.engine.hooks import BestOnVal, Hook, ValAccuracyLog
from ltbench.engine.memo import PerSplit
from ltbench.engine.method import Method
from ltbench.engine.stages import Stage
from ltbench.engine.trainer import save_atomic
from ltbench.losses import build_loss, multi_positive_contrastive
from ltbench.metrics import GROUPS, SHOT_RULES, shot_groups
from ltbench.models.calibration import (
                                        DISALIGN_FORMS,
                                        STAGE2_TYPES,
                                        build_second_stage,
                                        select_on_grid,
                                        select_tau,
                                        tau_normalised,
                                        tau_normalised_logits,
)
from ltbench.models.clip_finetune import VISUAL_SCOPES, freeze_batchnorm_statistics, set_visual_trainable, visual_blocks
from ltbench.models.factory import (
                                        create_backbone,
                                        create_clip_backbone,
                                        create_timm_classifier,
                                        timm_eval_transform,
                                        timm_label,
)
from ltbench.models.fingerprint import state_dict_sha256
from ltbench.models.heads import Float32Linear, build_head, float32_forward, no_autocast
from ltbench.models.peft import PEFT_TYPES, PeftViT, bottleneck_width, check_peft_options, text_head_weights
from ltbench.records.saved_logits import SavedRun

__all__ = [
    "METHODS", "DATASETS", "LOSSES", "SAMPLERS", "add_config_path", "registered", "register_variant", "Method", "RunContext", "UserError", "first_line_of",
    "unknown_name", "is_real", "is_whole", "related_method_config", "ComputedMethod", "seed_everything",
    "derive_seed", "generator", "seeded", "gather_batch",
    # data
    "LTDataset", "Split", "ArraySplit", "FileSplit", "split_subset", "TransformSpec", "AugmentSpec", "INTERPOLATIONS",
    "AUGMENT_KINDS", "MDA_FUNCTIONS", "training_augmentation",
    "CropSpec", "CROP_SETS", "crops",
    "templates_by_name",
    "build_sampler", "build_sampler_from_spec", "epoch_batches", "image_loader", "unlabeled_pool", "with_pool_images",
    # models
    "create_backbone", "create_clip_backbone", "create_timm_classifier", "timm_eval_transform", "timm_label",
    "state_dict_sha256", "build_head", "Float32Linear", "float32_forward", "no_autocast", "VISUAL_SCOPES", "set_visual_trainable", "visual_blocks",
    "freeze_batchnorm_statistics",
    "state_dict_sha256", "build_head",
    "PEFT_TYPES", "PeftViT", "bottleneck_width", "check_peft_options", "text_head_weights",
    "STAGE2_TYPES", "DISALIGN_FORMS", "build_second_stage", "select_tau", "tau_normalised",
    "select_on_grid", "tau_normalised_logits",
    # training
    "build_loss", "multi_positive_contrastive", "TensorBatches", "ArrayRowBatches", "EpochProgress",
    "Stage", "read_stage_checkpoint", "save_atomic", "Hook", "BestOnVal", "ValAccuracyLog", "fine_tune_clip",
    "clip_train_batches", "clip_image_stream",
    # metrics
    "GROUPS", "SHOT_RULES", "shot_groups",
    # features and predictions
    "image_features", "image_tokens", "text_classifier", "encode_split", "PerSplit", "ensemble_for", "SavedRun",
    # a run's linear head, saved for post-hoc methods
    "LinearHead", "save_linear_head", "read_linear_head",
]
