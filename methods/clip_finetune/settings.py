"""clip_finetune's settings that need the model (the encoder's depth), and what the trained weights
depend on; the options are declared and checked before any work in options.py."""
from ltbench.api import UserError


def check_blocks(trainable: dict, num_blocks: int, backbone: str) -> None:
    """trainable.last_blocks against the encoder's own depth (known once the model is built)."""
    if trainable["scope"] == "last_blocks" and trainable["last_blocks"] > num_blocks:
        raise UserError(f"trainable.last_blocks={trainable['last_blocks']} but the image encoder of {backbone} has "
                        f"{num_blocks} blocks; choose at most {num_blocks}, or trainable.scope=all")


def finetune_identity(cfg: dict) -> dict:
    """What the trained weights depend on besides the trainer's own settings (for --resume)."""
    train = cfg["train"]
    return {"head": cfg["head"], "trainable": cfg["trainable"], "loss": cfg["loss"],
            "templates": cfg["text"]["templates"] if cfg["head"]["init"] == "text" else None,
            "train": {key: train[key] for key in ("batch_size", "drop_last", "sampler", "augment", "encoder_lr_scale")}}
