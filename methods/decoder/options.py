"""The decoder family's options (decoder, decoder_ce, decoder_bs, ...: one class, one set of
options; the variants' YAML files change values). Their values, each with its source:
benchmarks/methods/decoder.yaml and the decoder_*.yaml files on top of it."""
from ltbench.api import TRAINING, Option, Section, UserError
from ltbench.api.calibration import DISALIGN_FORMS, STAGE2_TYPES
from ltbench.api.images import INTERPOLATIONS
from ltbench.api.options import AUGMENT, LOSS

MODEL_SELECTION = ("last", "best_val")
PREPROCESS = ("imagenet_code", "clip")


def _epochs_within_iterations(stage: dict, path: str):
    epochs, iterations = stage["epochs"], stage["iterations"]
    if epochs is not None and epochs > iterations:
        raise UserError(f"{path}.epochs={epochs} must be null or a whole number from 1 to {path}.iterations "
                        f"({iterations}); set {path}.epochs=null for epochs as long as the train set")


# A stage trained in iterations, as the code is (see settings.iteration_schedule): its warmup
# is given in iterations too, so the trainer's warmup_epochs is computed, not an option.
STAGE = TRAINING.without("warmup_epochs").extend({
    "batch_size": Option(int, ge=1, help="images per step"),
    "iterations": Option(int, ge=1, help="optimizer steps in all"),
    "epochs": Option(int, ge=1, nullable=True,
                     help="sampler epochs the iterations are split into (null: epochs as long as the train set)"),
    "warmup_iterations": Option(int, ge=0, help="steps of linear warmup"),
    "select": Option(str, choices=MODEL_SELECTION,
                     help="last: the last epoch's weights; best_val: the epoch with the best val top-1"),
}, checks=(_epochs_within_iterations,))

STAGE1 = STAGE.extend({
    "checkpoint": Option(str, None, nullable=True, help="a stage1.pt of an earlier run: skip stage 1 and load it"),
    "augment": AUGMENT,
    "tokens_cache": Option(bool, help="encode each image once and train from fp16 tokens in the feature cache"),
}, help="stage 1: the decoder on frozen CLIP tokens")


def _tau_grid(grid):
    return None if grid else "a non-empty list"


STAGE2 = STAGE.extend({
    "type": Option(str, choices=STAGE2_TYPES, help="the second stage on the frozen stage-1 model (none: no second stage)"),
    "loss": LOSS,
    "disalign_form": Option(str, choices=DISALIGN_FORMS,
                            help="type disalign: classification (1 + s * alpha) * z + s * beta, or segmentation"),
    "disalign_confidence_weight": Option(float, nullable=True,
                                         help="type disalign: the confidence layer's initial weights (null: PyTorch's init)"),
    "tau_grid": Option(list, items=float, ge=0, check=_tau_grid, help="type taunorm: the tau values tried on val"),
}, help="stage 2 on the frozen stage-1 model (its settings unused with type none)", off_when=("type", "none"))

OPTIONS = {
    "preprocess": Section({
        "type": Option(str, choices=PREPROCESS,
                       help="imagenet_code: the code's resize + centre crop and ImageNet mean / std; clip: the backbone's"),
        "resize": Option(int, ge=1, help="imagenet_code: the shorter side before the centre crop"),
        "crop": Option(int, ge=1, help="imagenet_code: the centre crop, the backbone's input size"),
        "interpolation": Option(str, choices=INTERPOLATIONS, help="imagenet_code: the resize's interpolation"),
        "mean": Option(list, items=float, length=3, help="imagenet_code: per-channel mean"),
        "std": Option(list, items=float, gt=0, length=3, help="imagenet_code: per-channel std"),
    }, help="the eval transform, and the size / interpolation / mean / std of the training crops"),
    "decoder": Section({
        "depth": Option(int, ge=0, help="pre-norm transformer blocks at the encoder width (0: a linear probe on CLS)"),
        "heads": Option(int, ge=1, help="attention heads of each block"),
        "mlp_ratio": Option(float, gt=0, help="hidden width of each block's MLP, as a share of the width"),
        "final_norm": Option(bool, help="a LayerNorm on the CLS token before the head"),
    }, help="the decoder on the tokens"),
    "loss": LOSS,
    "stage1": STAGE1,
    "stage2": STAGE2,
}
