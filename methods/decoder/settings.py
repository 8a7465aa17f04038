"""The decoder family's own settings: the code's iteration schedule, the code's preprocessing,
and what stage 1 depends on (the options are declared and checked in options.py)."""
import math

from ltbench.api import UserError
from ltbench.api.images import TransformSpec


def iteration_schedule(stage: dict, num_images: int):
    """(steps per epoch, epochs, warmup epochs) for a stage configured in iterations, as the code is.

    stage.epochs set (the code: 32): `iterations` in that many sampler epochs of iterations //
    epochs steps each, as USB's loader draws them (num_train_iter // epoch batches an epoch,
    whatever the train size). stage.epochs null: an epoch is min(iterations, N // batch) steps,
    so short runs on small sets still see every sampler epoch boundary, and the total is rounded
    up to whole epochs.
    """
    batch_size, iterations = int(stage["batch_size"]), int(stage["iterations"])
    if stage["epochs"]:
        epochs = int(stage["epochs"])
        steps = iterations // epochs
    else:
        steps = max(1, min(iterations, num_images // batch_size))
        epochs = math.ceil(iterations / steps)
    return steps, epochs, float(stage["warmup_iterations"]) / steps


def tau_grid(stage: dict) -> list:
    return [float(t) for t in stage["tau_grid"]]


def decoder_transform(options: dict, encoder) -> TransformSpec:
    """The eval transform (and the training crops' size, interpolation, mean and std): the
    code's ImageNet recipe (preprocess.type imagenet_code) or the backbone's CLIP transform."""
    if options["type"] == "clip":
        return encoder.eval_transform
    size = encoder.eval_transform.size
    if options["crop"] != size:
        raise UserError(f"preprocess.crop={options['crop']!r}, but backbone {encoder.label} takes {size} px "
                        f"images; set preprocess.crop={size} (and a resize to match) or preprocess.type=clip")
    if options["resize"] < size:
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
    # Stage 1 may train on cached tokens of Pillow-draft or GPU-decoded images.
    identity.update(jpeg_draft=cfg["jpeg_draft"], gpu_jpeg=cfg["gpu_jpeg"])
    return identity


