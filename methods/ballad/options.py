"""BALLAD's options: phase A (the framework's, shared with TACKLE's teacher) and phase B, the
residual adapter. Their values, each with its source: benchmarks/methods/ballad.yaml."""
from ltbench.api import TRAINING, Option
from ltbench.api.options import AUGMENT, PHASE_A_OPTIONS
from ltbench.methods.ballad.adapters import ADAPTER_VARIANTS

MODEL_SELECTION = ("last", "best_val")

PHASE_B_OPTIONS = TRAINING.extend({
    "adapter": Option(str, choices=ADAPTER_VARIANTS,
                      help="relu: f* = r * ReLU(W^T f + b) + (1 - r) * f; linear: f* = r * W^T f + (1 - r) * f"),
    "ratio": Option(float, ge=0, le=1, help="r (lambda), the adapter's share of the feature"),
    "logit_scale": Option(float, gt=0, help="the cosine classifier's scale against the frozen class text features"),
    "batch_size": Option(int, ge=1, help="images per step; steps per epoch = int(N / batch)"),
    "augment": AUGMENT,
    "select": Option(str, choices=MODEL_SELECTION,
                     help="last: the last epoch's adapter; best_val: the epoch with the best val top-1"),
}, help="phase B: the residual adapter on the frozen model's features")

OPTIONS = {
    "phase_a": PHASE_A_OPTIONS,
    "phase_b": PHASE_B_OPTIONS,
}
