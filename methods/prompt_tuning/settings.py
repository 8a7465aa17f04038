"""The identity of a learnt prompt context (what its values depend on); the options are declared
and checked before any work in options.py."""


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
    # Without augmentation it trains on cached features of Pillow-draft or GPU-decoded images.
    identity.update(jpeg_draft=cfg["jpeg_draft"], gpu_jpeg=cfg["gpu_jpeg"] and not cfg["train"]["augment"]["enabled"])
    return identity
