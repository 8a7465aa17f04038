"""LIFT's options, and the rules between them, checked before any work. Their values, each with
its source: benchmarks/methods/lift.yaml."""
from ltbench.api import TRAINING, Option, Section
from ltbench.api.images import (
    AUGMENT_KINDS,
    CROP_SETS,
    INTERPOLATIONS,
    MDA_FUNCTIONS,
    TransformSpec,
    training_augmentation,
)
from ltbench.api.options import AUGMENT, LOSS
from ltbench.api.peft import AFT_LOCS, DOWN_INITS, PEFT_TYPES, VPT_INITS, VPT_POSITIONS, check_peft_options

# auto: text with a CLIP backbone, class_mean without a text tower (the codes' classifier_init of
# each backbone config: semantic / text_feat for CLIP, class_mean for the IN21K ViTs).
HEAD_INITS = ("auto", "text", "class_mean", "random")
FEATURE_SPACES = ("width", "embed")  # ltbench.models.peft's; check_peft_options holds them to it
SSF_PLACES = ("attn", "mlp", "ln")
EVAL_RESIZES = ("code", "model")


PEFT_KEYS = ("bottleneck", "blocks", "adaptformer_scale", "vpt_length", "ssf_at", "down_init", "vpt_position",
             "vpt_init", "aft_ratio", "aft_loc", "aft_seed")


def peft_options(peft: dict, space: str) -> dict:
    """The options PeftViT takes besides the type."""
    return {**{key: peft[key] for key in PEFT_KEYS}, "space": space}


def _peft_rules(cfg: dict, path: str):
    check_peft_options(cfg["peft"]["type"], **peft_options(cfg["peft"], cfg["head"]["space"]))


def _augment_rules(cfg: dict, path: str):
    """augment.kind minimalist's rules (square crops, no flip or jitter, at least 2 epochs for its
    schedule), as the data layer holds them, at a stand-in image size (the backbone's is not known
    before it is built)."""
    train = cfg["train"]
    training_augmentation(TransformSpec(size=1, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), train["augment"],
                          train["epochs"])


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
        "down_init": Option(str, choices=DOWN_INITS,
                            help="adapter / adaptformer down-projection init (kaiming_normal: LIFT; kaiming_uniform: "
                                 "LIFT+)"),
        "vpt_position": Option(str, choices=VPT_POSITIONS,
                               help="where VPT's prompts go: end (after the sequence, LIFT) or after_cls (LIFT+)"),
        "vpt_init": Option(str, choices=VPT_INITS,
                           help="VPT's prompt init: uniform (LIFT's bound) or normal, std 0.02 (LIFT+)"),
        "aft_ratio": Option(float, gt=0, le=1, nullable=True,
                            help="aft: the fraction of each chosen tensor's entries that trains (null: LIFT+'s "
                                 "C / (L (k W + b)), as many as the classifier has)"),
        "aft_loc": Option(str, choices=AFT_LOCS, help="aft: the linears whose entries train (attention, FFN or all)"),
        "aft_seed": Option(int, ge=0, nullable=True,
                           help="aft: one fixed seed for every mask (LIFT+'s code: 0); null: masks from the run's "
                                "seed, block and tensor"),
    }, help="the parameter-efficient modules on the frozen ViT"),
    "head": Section({
        "init": Option(str, choices=HEAD_INITS,
                       help="auto: text with a text tower, else class_mean; text: the class text features; "
                            "class_mean: the class means of the training features; random"),
        "class_mean_images": Option(int, ge=1, nullable=True,
                                    help="class_mean: at most this many training images a class, drawn at random "
                                         "(LIFT+: 100); null: every image (LIFT)"),
        "class_mean_modules": Option(bool,
                                     help="class_mean: features through the PEFT modules at their init (LIFT+); "
                                          "false: the frozen tower (LIFT)"),
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
        "augment": AUGMENT.extend({
            "kind": Option(str, choices=AUGMENT_KINDS,
                           help="random_resized_crop (with flip and jitter as set) or minimalist: LIFT+'s square "
                                "crops, minimum area rising per epoch"),
            "schedule": Option(str, choices=MDA_FUNCTIONS,
                               help="kind minimalist: how the minimum area rises over the epochs (LIFT+'s mda_func)"),
        }),
    }),
}, checks=(_peft_rules, _augment_rules))
