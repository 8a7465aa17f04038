"""LIFT's options, and the rules between them, checked before any work. Their values, each with
its source: benchmarks/methods/lift.yaml."""
from ltbench.api import TRAINING, Option, Section
from ltbench.api.images import CROP_SETS, INTERPOLATIONS
from ltbench.api.options import AUGMENT, LOSS
from ltbench.api.peft import PEFT_TYPES, check_peft_options

HEAD_INITS = ("text", "random")
FEATURE_SPACES = ("width", "embed")  # ltbench.models.peft's; check_peft_options holds them to it
SSF_PLACES = ("attn", "mlp", "ln")
EVAL_RESIZES = ("code", "model")


def peft_options(peft: dict, space: str) -> dict:
    """The options PeftViT takes besides the type."""
    return {"bottleneck": peft["bottleneck"], "blocks": peft["blocks"], "adaptformer_scale": peft["adaptformer_scale"],
            "vpt_length": peft["vpt_length"], "ssf_at": peft["ssf_at"], "space": space}


def _peft_rules(cfg: dict, path: str):
    check_peft_options(cfg["peft"]["type"], **peft_options(cfg["peft"], cfg["head"]["space"]))


OPTIONS = Section({
    "peft": Section({
        "type": Option(str, choices=PEFT_TYPES, help="the PEFT modules (full / partial: fine-tune the blocks)"),
        "bottleneck": Option(int, ge=1, nullable=True,
                             help="adaptformer / adapter width and LoRA rank (null: 2^floor(log2(C / 2L)))"),
        "blocks": Option(int, ge=0, nullable=True,
                         help="only the last K blocks get modules (partial: are trained; null: every block)"),
        "adaptformer_scale": Option(float, also=("learnable",),
                                    help="AdaptFormer's scale: learnable (a learnt scalar, init 1) or a fixed number"),
        "vpt_length": Option(int, ge=1, help="prompt tokens per VPT layer"),
        "ssf_at": Option(list, items=str, choices=SSF_PLACES, min_length=1,
                         help="where SSF scales and shifts: after attention, the MLP and / or the LayerNorms"),
    }, help="the parameter-efficient modules on the frozen ViT"),
    "head": Section({
        "init": Option(str, choices=HEAD_INITS, help="text: rows from the class text features; random"),
        "scale": Option(float, gt=0, help="the cosine classifier's logit scale"),
        "space": Option(str, choices=FEATURE_SPACES,
                        help="width: the classifier reads ln_post's CLS output; embed: after the projection"),
    }, help="the cosine classifier"),
    "loss": LOSS,
    "preprocess": Section({
        "interpolation": Option(str, choices=INTERPOLATIONS, help="the resize's interpolation"),
        "eval_resize": Option(str, choices=EVAL_RESIZES,
                              help="code: shorter side to size * 8 // 7, centre crop; model: the backbone's transform"),
    }, help="the image pipeline"),
    "tte": Section({
        "enabled": Option(bool, help="test-time ensembling over crops"),
        "crops": Option(str, choices=CROP_SETS, help="five: corners + centre; ten: and their mirrors"),
        "expand": Option(int, ge=0, help="resize to size + expand px, then crop size"),
    }, help="test-time ensembling"),
    "train": TRAINING.extend({
        "batch_size": Option(int, ge=1, help="images per step"),
        "augment": AUGMENT,
    }),
}, checks=(_peft_rules,))
