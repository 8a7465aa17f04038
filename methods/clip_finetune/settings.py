"""clip_finetune's settings: checked before any work, each bad value a one-line error naming the key."""
from ltbench.api import UserError, unknown_name
from ltbench.api.checks import is_real, is_whole
from ltbench.api.finetune import VISUAL_SCOPES

HEAD_TYPES = ("cosine", "linear")
HEAD_INITS = ("text", "random")
BATCHNORM_MODES = ("frozen", "train")


def check_settings(cfg: dict) -> None:
    """Everything that needs no model: names, numbers, and trainable settings that train nothing."""
    head, trainable, train = cfg["head"], cfg["trainable"], cfg["train"]
    if head["type"] not in HEAD_TYPES:
        raise unknown_name("head.type", head["type"], HEAD_TYPES)
    if head["init"] not in HEAD_INITS:
        raise unknown_name("head.init", head["init"], HEAD_INITS)
    if not (is_real(head["scale"]) and head["scale"] > 0):
        raise UserError(f"head.scale={head['scale']!r} must be a number > 0 (cosine logits = scale * cos; "
                        "LIFT uses 25, zero-shot CLIP about 100)")
    if not isinstance(head["learn_scale"], bool):
        raise UserError(f"head.learn_scale must be true or false, got {head['learn_scale']!r}")
    if head["learn_scale"] and head["type"] != "cosine":
        raise UserError("head.learn_scale=true needs head.type=cosine: a linear head's weights carry their own scale")
    if trainable["scope"] not in VISUAL_SCOPES:
        raise unknown_name("trainable.scope", trainable["scope"], VISUAL_SCOPES)
    if not isinstance(trainable["head"], bool):
        raise UserError(f"trainable.head must be true or false, got {trainable['head']!r}")
    if trainable["batchnorm"] not in BATCHNORM_MODES:
        raise unknown_name("trainable.batchnorm", trainable["batchnorm"], BATCHNORM_MODES)
    blocks = trainable["last_blocks"]
    if not (is_whole(blocks) and blocks >= 0):
        raise UserError(f"trainable.last_blocks={blocks!r} must be a whole number >= 0")
    encoder_frozen = trainable["scope"] == "none" or (trainable["scope"] == "last_blocks" and blocks == 0)
    if encoder_frozen and not trainable["head"]:
        what = "trainable.scope=none" if trainable["scope"] == "none" else "trainable.last_blocks=0"
        raise UserError(f"{what} with trainable.head=false trains nothing; raise trainable.last_blocks, "
                        "choose another trainable.scope or set trainable.head=true")
    scale = train["encoder_lr_scale"]
    if not (is_real(scale) and scale > 0):
        raise UserError(f"train.encoder_lr_scale={scale!r} must be a number > 0 (the encoder's lr is this times "
                        "train.lr); to freeze the encoder set trainable.scope=none")
    if not (is_whole(train["epochs"]) and train["epochs"] >= 1):
        raise UserError(f"train.epochs={train['epochs']!r} must be a whole number >= 1")
    if not (is_whole(train["batch_size"]) and train["batch_size"] >= 1):
        raise UserError(f"train.batch_size={train['batch_size']!r} must be a whole number >= 1")


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
