"""clip_finetune's options, and the rules between them, checked before any work. Their values,
each with its source: benchmarks/methods/clip_finetune.yaml (clip_finetune_bs.yaml on top)."""
from ltbench.api import TRAINING, Option, Section, UserError
from ltbench.api.finetune import VISUAL_SCOPES
from ltbench.api.options import AUGMENT, LOSS

HEAD_TYPES = ("cosine", "linear")
HEAD_INITS = ("text", "random")
BATCHNORM_MODES = ("frozen", "train")


def _learn_scale_needs_cosine(head: dict, path: str):
    if head["learn_scale"] and head["type"] != "cosine":
        raise UserError("head.learn_scale=true needs head.type=cosine: a linear head's weights carry their own scale")


def _something_trains(trainable: dict, path: str):
    encoder_frozen = trainable["scope"] == "none" or (trainable["scope"] == "last_blocks" and trainable["last_blocks"] == 0)
    if encoder_frozen and not trainable["head"]:
        what = "trainable.scope=none" if trainable["scope"] == "none" else "trainable.last_blocks=0"
        raise UserError(f"{what} with trainable.head=false trains nothing; raise trainable.last_blocks, "
                        "choose another trainable.scope or set trainable.head=true")


OPTIONS = {
    "head": Section({
        "type": Option(str, choices=HEAD_TYPES, help="cosine: logits = scale * cos(f, w_c); linear: W f + b"),
        "init": Option(str, choices=HEAD_INITS,
                       help="text: rows = the prompt-ensemble text features (starts as zero-shot CLIP); random"),
        "scale": Option(float, gt=0, help="the cosine scale; with init text and type linear the weights are scale * t_c"),
        "learn_scale": Option(bool, help="the cosine scale trains too (as log scale)"),
    }, help="the classification head", checks=(_learn_scale_needs_cosine,)),
    "trainable": Section({
        "scope": Option(str, choices=VISUAL_SCOPES,
                        help="what of the image encoder trains: all, last_blocks, norm, bias, norm_bias or none"),
        "last_blocks": Option(int, ge=0, help="scope last_blocks: residual blocks trained at the end (0: none)"),
        "head": Option(bool, help="the head trains (false: it stays as initialised)"),
        "batchnorm": Option(str, choices=BATCHNORM_MODES,
                            help="ResNet BatchNorm statistics: frozen (the pretrained ones) or train"),
    }, help="what trains", checks=(_something_trains,)),
    "loss": LOSS,
    "train": TRAINING.extend({
        "batch_size": Option(int, ge=1, help="images per step"),
        "drop_last": Option(bool, help="true: the last partial batch of an epoch is not trained"),
        "encoder_lr_scale": Option(float, gt=0, help="the encoder trains at this times train.lr (the head at train.lr)"),
        "augment": AUGMENT,
    }),
}
