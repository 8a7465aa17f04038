"""The decoder family's own settings: the code's iteration schedule, checks of each stage's
options before any work, the code's preprocessing, and what stage 1 depends on."""
import math

from ltbench.api import UserError, unknown_name
from ltbench.api.calibration import DISALIGN_FORMS
from ltbench.api.images import INTERPOLATIONS, TransformSpec

MODEL_SELECTION = ("last", "best_val")
PREPROCESS = ("imagenet_code", "clip")


def iteration_schedule(stage: dict, num_images: int):
    """(steps per epoch, epochs, warmup epochs) for a stage configured in iterations, as the code is.

    stage.epochs set (the code: 32): `iterations` in that many sampler epochs of iterations //
    epochs steps each, as USB's loader draws them (num_train_iter // epoch batches an epoch,
    whatever the train size). stage.epochs null: an epoch is min(iterations, N // batch) steps,
    so short runs on small sets still see every sampler epoch boundary, and the total is rounded
    up to whole epochs.
    """
    batch_size, iterations = int(stage["batch_size"]), int(stage["iterations"])
    if stage.get("epochs"):
        epochs = int(stage["epochs"])
        steps = iterations // epochs
    else:
        steps = max(1, min(iterations, num_images // batch_size))
        epochs = math.ceil(iterations / steps)
    return steps, epochs, float(stage.get("warmup_iterations", 0)) / steps


def check_stage(name: str, stage: dict):
    """A stage's own settings (the trainer checks the rest), before any work."""
    epochs, iterations = stage.get("epochs"), stage["iterations"]
    if epochs is not None and not (isinstance(epochs, int) and not isinstance(epochs, bool)
                                   and 1 <= epochs <= iterations):
        raise UserError(f"{name}.epochs={epochs!r} must be null or a whole number from 1 to {name}.iterations "
                        f"({iterations}); set {name}.epochs=null for epochs as long as the train set")
    if stage.get("select", "last") not in MODEL_SELECTION:
        raise unknown_name(f"{name}.select", stage["select"], MODEL_SELECTION)


def check_second_stage(kind: str, stage: dict):
    """stage2's settings for its type, before any work."""
    if kind in ("none", "taunorm"):
        if kind == "taunorm":
            tau_grid(stage)
        return
    check_stage("stage2", stage)
    if kind == "disalign":
        if stage.get("disalign_form", "classification") not in DISALIGN_FORMS:
            raise unknown_name("stage2.disalign_form", stage["disalign_form"], DISALIGN_FORMS)
        weight = stage.get("disalign_confidence_weight")
        if weight is not None and not (isinstance(weight, (int, float)) and not isinstance(weight, bool)):
            raise UserError(f"stage2.disalign_confidence_weight={weight!r} must be null (PyTorch's default "
                            "init, Imbalance-VLM) or a number (cvpods: 0.1)")


def tau_grid(stage: dict) -> list:
    grid = stage.get("tau_grid")
    if not (isinstance(grid, list) and grid and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 for t in grid)):
        raise UserError(f"stage2.tau_grid={grid!r} must be a non-empty list of numbers >= 0, e.g. [0, 0.5, 1]")
    return [float(t) for t in grid]


def decoder_transform(options: dict, encoder) -> TransformSpec:
    """The eval transform (and the training crops' size, interpolation, mean and std): the
    code's ImageNet recipe (preprocess.type imagenet_code) or the backbone's CLIP transform."""
    kind = options.get("type")
    if kind == "clip":
        return encoder.eval_transform
    if kind != "imagenet_code":
        raise unknown_name("preprocess.type", kind, PREPROCESS)
    size = encoder.eval_transform.size
    if options["crop"] != size:
        raise UserError(f"preprocess.crop={options['crop']!r}, but backbone {encoder.label} takes {size} px "
                        f"images; set preprocess.crop={size} (and a resize to match) or preprocess.type=clip")
    if options["interpolation"] not in INTERPOLATIONS:
        raise unknown_name("preprocess.interpolation", options["interpolation"], INTERPOLATIONS)
    if not (isinstance(options["resize"], int) and options["resize"] >= size):
        raise UserError(f"preprocess.resize={options['resize']!r} must be a whole number >= the crop ({size})")
    return TransformSpec(size=size, mean=tuple(float(v) for v in options["mean"]),
                         std=tuple(float(v) for v in options["std"]), interpolation=options["interpolation"],
                         resize=options["resize"])


def stage1_identity(cfg: dict, precision: str) -> dict:
    """Everything the stage-1 weights depend on (the seed goes into the folder name). precision:
    the one the run computes at (ctx.precision: bf16 only with amp on CUDA), for the tokens it
    reads and the steps it trains, not the amp setting a CPU run ignores."""
    stage = {key: value for key, value in cfg["stage1"].items() if key != "checkpoint"}
    identity = {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "decoder": cfg["decoder"],
                "loss": cfg["loss"], "stage1": stage, "precision": precision, "preprocess": cfg["preprocess"]}
    if cfg.get("jpeg_draft"):  # only when used: stages trained before the setting keep their folder
        identity["jpeg_draft"] = True
    if cfg.get("gpu_jpeg"):  # stage 1 may train on cached tokens of GPU-decoded images
        identity["gpu_jpeg"] = True
    return identity


