"""Checks of the prompt_tuning settings (one-line errors before any work) and the identity of a
learnt context (what its values depend on)."""
from ltbench.api import UserError, unknown_name
from ltbench.api.checks import is_real, is_whole
from ltbench.methods.prompt_tuning.prompts import CLASS_POSITIONS, INITS


def _positive_number(value) -> bool:
    return is_real(value) and value > 0


def check_settings(cfg: dict):
    """Everything prompt_tuning reads from its config that the trainer and loss do not check."""
    options = cfg["context"]
    n_ctx = options["n_ctx"]
    if not (is_whole(n_ctx) and n_ctx >= 1):
        raise UserError(f"context.n_ctx={n_ctx!r} must be a whole number >= 1 (CoOp: 16)")
    if options["class_position"] not in CLASS_POSITIONS:
        raise unknown_name("context.class_position", options["class_position"], CLASS_POSITIONS)
    if options["init"] not in INITS:
        raise unknown_name("context.init", options["init"], INITS)
    if not isinstance(options["class_specific"], bool):
        raise UserError(f"context.class_specific={options['class_specific']!r} must be true or false")
    if not (is_real(options["init_std"]) and options["init_std"] >= 0):
        raise UserError(f"context.init_std={options['init_std']!r} must be a number >= 0 (CoOp: 0.02)")
    scale = cfg["logit_scale"]
    if scale != "clip" and not _positive_number(scale):
        raise UserError(f"logit_scale={scale!r} must be 'clip' (CLIP's learnt temperature) or a number > 0")
    chunk = cfg["text_chunk"]
    if not (is_whole(chunk) and chunk >= 1):
        raise UserError(f"text_chunk={chunk!r} must be a whole number >= 1: prompts per text-tower chunk")
    if not isinstance(cfg["checkpointing"], bool):
        raise UserError(f"checkpointing={cfg['checkpointing']!r} must be true or false")
    if options["checkpoint"]:
        return  # the context is loaded, nothing trains
    train = cfg["train"]
    epochs, lr = train["epochs"], train["lr"]
    if not (is_whole(epochs) and epochs >= 1):
        raise UserError(f"train.epochs={epochs!r}: prompt tuning with no epochs trains nothing; set train.epochs "
                        ">= 1, or context.checkpoint to evaluate a learnt context")
    if not _positive_number(lr):
        raise UserError(f"train.lr={lr!r}: the context trains only with a learning rate > 0 (CoOp: 0.002)")
    if not (is_whole(train["batch_size"]) and train["batch_size"] >= 1):
        raise UserError(f"train.batch_size={train['batch_size']!r} must be a whole number >= 1 (CoOp: 32)")


def context_identity(cfg: dict, precision: str) -> dict:
    """Everything the learnt context depends on (the seed goes into the folder name). text_chunk
    and checkpointing change only memory and rounding order, not the recipe: left out, so a run
    with another chunk size reuses the context. precision: the one the run computes at
    (ctx.precision: bf16 only with amp on CUDA), not the amp setting a CPU run ignores."""
    identity = {"dataset": cfg["dataset"], "backbone": cfg["backbone"]["clip"], "precision": precision,
                "context": {key: value for key, value in cfg["context"].items() if key != "checkpoint"},
                "logit_scale": cfg["logit_scale"], "loss": cfg["loss"], "train": cfg["train"],
                # Each name tokenized with its full stop, as CoOp does: contexts learnt on the
                # former prompts (a separate '.' token) are not reused.
                "prompt_tokens": "name_with_stop"}
    if cfg.get("jpeg_draft"):
        identity["jpeg_draft"] = True
    if cfg.get("gpu_jpeg") and not cfg["train"]["augment"]["enabled"]:
        identity["gpu_jpeg"] = True  # it trains on cached features of GPU-decoded images
    return identity
