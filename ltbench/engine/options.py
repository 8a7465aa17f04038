"""The options every method has, and the sections several methods share.

``COMMON`` is what ``Method`` declares, so every method, built-in or plug-in, has these options
(their values: benchmarks/defaults.yaml and the dataset's YAML). ``TRAINING`` is a section of the
shared trainer's settings and the sampler, with defaults (ltbench's linear-probe recipe), so a
plug-in that trains declares ``"train": TRAINING`` and repeats nothing; ``AUGMENT`` the training
augmentation; ``LOSS`` and ``SAMPLER`` options that name a registered loss or sampler;
``ENSEMBLE`` the ensembles' section. Each is declared once here and checked by the resolver
before any work (docs/configuration.md, "Options").
"""
import re

import numpy as np

from ltbench.config.options import Option, Section, Spec
from ltbench.core.errors import UserError
from ltbench.data.prompts import TEMPLATE_SETS
from ltbench.data.samplers import build_sampler
from ltbench.engine.ensembles import COMBINE_RULES
from ltbench.losses import build_loss
from ltbench.metrics import SHOT_RULES
from ltbench.models.backbones import parse_backbone

OURS = "ours"
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "cosine_usb", "cosine_epoch", "constant")
# warmup_type linear: the warmup ramps up to the base lr; constant: it runs at warmup_lr (CoOp:
# 1 epoch at 1e-5), then the schedule starts at the base lr.
WARMUP_TYPES = ("linear", "constant")


def _backbone(value):
    parse_backbone(value)  # a malformed name is a one-line UserError


SAVED_LOGITS_FORMATS = "true, false, float32, float16 or topK (e.g. top10)"


def _saved_logits_format(value):
    """The formats records/saved_logits.py writes (checked here, before any work)."""
    if isinstance(value, bool) or value in ("float32", "float16") \
            or (isinstance(value, str) and re.fullmatch(r"top[1-9][0-9]*", value)):
        return None
    return SAVED_LOGITS_FORMATS


def _sampler(spec):
    build_sampler(spec, np.arange(2))  # its name, option names and values


def _loss(spec):
    build_loss(spec)


LOSS = Option(Spec("loss", _loss), help="a registered loss (`ltbench list losses`): a name or {type: NAME, ...}")
SAMPLER = Option(Spec("sampler", _sampler), default="instance", source=OURS,
                 help="a registered sampler (`ltbench list samplers`): a name or {type: NAME, ...}")


def _sorted_pair(value, strictly_positive_low: bool, high=None):
    low, top = value
    if not (low > 0 if strictly_positive_low else low >= 0) or low > top or (high is not None and top > high):
        bounds = f"0 < min <= max{f' <= {high:g}' if high is not None else ''}"
        return f"[min, max] with {bounds}"
    return None


AUGMENT = Section({
    "enabled": Option(bool, True, source=OURS, help="augment training images (false: the eval transform)"),
    "crop_scale": Option(list, [0.08, 1.0], source=OURS, items=float, length=2,
                         check=lambda v: _sorted_pair(v, True, 1.0),
                         help="RandomResizedCrop's area range, [min, max] in (0, 1]"),
    "crop_ratio": Option(list, [0.75, 4 / 3], source=OURS, items=float, length=2,
                         check=lambda v: _sorted_pair(v, True), help="RandomResizedCrop's aspect-ratio range"),
    "flip": Option(bool, True, source=OURS, help="random horizontal flips"),
    "color_jitter": Option(list, [0.0, 0.0, 0.0, 0.0], source=OURS, items=float, ge=0, length=4,
                           check=lambda v: None if v[3] <= 0.5 else "[brightness, contrast, saturation, hue], hue <= 0.5",
                           help="ColorJitter's brightness, contrast, saturation, hue (all 0: none)"),
}, help="training augmentation: crops at the backbone's input size, flips, colour jitter")


def _check_training(values: dict, path: str):
    """Rules between the trainer's settings (a section at `path`)."""
    if values.get("warmup_type") == "constant" and values.get("warmup_lr") is None:
        raise UserError(f"{path}.warmup_lr=None: warmup_type constant needs the warmup's lr, a number > 0 "
                        "(CoOp: 1.0e-5)")


TRAINING = Section({
    "epochs": Option(int, 30, source=OURS, ge=1, help="training epochs"),
    "optimizer": Option(str, "adamw", source=OURS, choices=OPTIMIZERS, help="the optimizer"),
    "lr": Option(float, 1.0e-3, source=OURS, gt=0, help="learning rate"),
    "momentum": Option(float, 0.9, source=OURS, ge=0, le=1, help="SGD momentum"),
    "nesterov": Option(bool, False, source=OURS, help="SGD with Nesterov momentum"),
    "weight_decay": Option(float, 1.0e-4, source=OURS, ge=0, help="weight decay"),
    "weight_decay_1d": Option(bool, True, source=OURS,
                              help="decay 1-D parameters too (biases, norm weights); false: those are not decayed"),
    "schedule": Option(str, "cosine", source=OURS, choices=SCHEDULES,
                       help="lr schedule after the warmup (cosine: to 0, stepped per step; see trainer.py)"),
    "cosine_cycles": Option(float, 7 / 16, source="code", gt=0, le=1,
                            help="schedule cosine_usb only: lr = base * cos(pi * cycles * progress) (USB's 7/16)"),
    "warmup_epochs": Option(float, 0, source=OURS, ge=0, help="epochs of warmup before the schedule"),
    "warmup_type": Option(str, "linear", source=OURS, choices=WARMUP_TYPES,
                          help="linear: ramp up to lr; constant: the warmup runs at warmup_lr"),
    "warmup_lr": Option(float, None, source=OURS, gt=0, nullable=True,
                        help="the lr of a constant warmup (warmup_type constant only)"),
    "grad_accum_steps": Option(int, 1, source=OURS, ge=1, help="steps per optimizer update"),
    "log_interval": Option(int, 10, source=OURS, ge=1, help="steps between progress updates (each syncs the device)"),
    "sync_batchnorm": Option(bool, True, source=OURS,
                             help="under torchrun on CUDA, BatchNorm over the global batch (false: each GPU's)"),
    "sampler": SAMPLER,
}, help="the shared trainer's settings and the training sampler", checks=(_check_training,))


def _weights(value):
    return None if sum(value) > 0 else "numbers >= 0 that do not all equal 0"


ENSEMBLE = Section({
    "combine": Option(str, choices=COMBINE_RULES,
                      help="probs: weighted mean of probabilities; logit_adjusted: of z - adjust * log(train prior)"),
    "weights": Option(list, items=float, ge=0, nullable=True, check=_weights,
                      help="one weight per member; null: the best point of a grid on val"),
    "weight_step": Option(float, gt=0, le=1,
                          check=lambda v: None if abs(round(1 / v) - 1 / v) <= 1e-6 else "a step that divides 1",
                          help="the step of the grid over the weight simplex"),
    "adjust": Option(list, items=float, nullable=True,
                     help="logit_adjusted only: one strength per member (null: all 0)"),
}, help="how members' predictions are combined")

COMMON = Section({
    "method": Option(str, help="the method's registered name (--method)"),
    "seed": Option(int, ge=0, help="the run's seed: every random number derives from it (--seed)"),
    "backbone": Section({
        "clip": Option(str, check=_backbone,
                       help="MODEL:TAG, MODEL:none, MODEL:/path/ckpt.pt, tiny or timm:NAME (--backbone)"),
    }, help="the models a run builds"),
    "dataset": Section({
        "name": Option(str, help="the dataset's registered name (--dataset)"),
        "root": Option(str, None, nullable=True, help="the folder the images are in (--data-root)"),
        "split_dir": Option(str, None, nullable=True, help="the folder of the split files (--split-dir; default: root)"),
    }, help="the dataset's options (its builder declares the rest)"),
    "eval_split": Option(str, choices=("test", "val"), help="the split the record's metrics come from"),
    "eval_val": Option(bool, help="also evaluate on val (extra_metrics.val) when eval_split is test"),
    "jpeg_draft": Option(bool, help="decode JPEG files in Pillow's draft mode (eval transform only; other pixels)"),
    "gpu_jpeg": Option(bool, help="decode JPEG files on the GPU (frozen-encoder passes only; other pixels)"),
    "shot_rule": Option(str, choices=SHOT_RULES, help="many / medium / few thresholds (standard: 100 / 20)"),
    "amp": Option(bool, help="bf16 autocast on CUDA (ignored on the CPU)"),
    "deterministic": Option(bool, help="deterministic algorithms: the same bits on a rerun, slower"),
    "batch_size": Option(int, ge=1, help="training batch size"),
    "eval_batch_size": Option(int, ge=1, help="feature extraction / evaluation batch size"),
    "text": Section({
        "templates": Option(str, choices=TEMPLATE_SETS, help="prompt templates of the text classifier"),
        "logit_scale": Option(float, gt=0, help="zero-shot logits = scale * cos(f, t_c)"),
    }, help="the text classifier"),
    "runtime": Section({
        "device": Option(str, help="cpu, cuda, cuda:N or auto (--device)"),
        "num_workers": Option(int, ge=0, also=("auto",), help="image decoding processes per run process"),
        "progress": Option(bool, help="progress bars (--no-progress)"),
        "compile": Option(bool, help="torch.compile the trained module"),
        "cache_dir": Option(str, nullable=True, help="feature cache folder (null: $LTBENCH_CACHE or ~/.cache/ltbench)"),
        "save_logits": Option(object, check=_saved_logits_format, allowed_text=SAVED_LOGITS_FORMATS,
                              help="save test / val logits beside the record (--save-logits [FORMAT])"),
        "cpu_threads": Option(int, ge=1, nullable=True,
                              help="torch CPU threads (null: torch's default; under torchrun this process's share)"),
        "collective_timeout_minutes": Option(float, gt=0, lt=10 ** 6,
                                             help="under torchrun, how long a process waits at a collective"),
    }, help="how the run runs, not what it computes: not in the config hash"),
})


def options_of(method_cls) -> Section:
    """A method class's options: its own over those of the classes it derives from."""
    from ltbench.config.options import merged_options

    return merged_options(reversed(type.mro(method_cls)))


__all__ = ["COMMON", "TRAINING", "AUGMENT", "LOSS", "SAMPLER", "ENSEMBLE", "options_of"]
