"""TACKLE's options. Their values, each with its source: benchmarks/methods/tackle.yaml, whose
per_backbone sections are keyed by the vision model (per_backbone_from: backbone.vision)."""
from ltbench.api import TRAINING, Option, Section
from ltbench.api.options import AUGMENT, ENSEMBLE, LOSS
from ltbench.methods.tackle.pseudo_labels import ELIGIBLE_GROUPS

TEACHERS = ("clip", "ballad_phase_a")

OPTIONS = {
    "backbone": Section({
        "vision": Option(str, help="the timm model that trains on train + pool (any timm model name)"),
    }),
    "teacher": Section({
        "source": Option(str, choices=TEACHERS,
                         help="the CLIP that labels the pool: clip (zero-shot) or ballad_phase_a (after BALLAD's phase A)"),
        "phase_a_checkpoint": Option(str, None, nullable=True, help="ballad_phase_a: a phase_a.pt to load instead"),
        "ballad_options": Option(list, items=str,
                                 help="ballad_phase_a: KEY=VALUE options of that ballad config, e.g. [phase_a.epochs=20]"),
        "tau": Option(float, gt=0, help="temperature of the teacher's class probabilities"),
    }, help="the pseudo-labelling CLIP"),
    "pool": Section({
        "enabled": Option(bool, help="false: the vision model trains on the labeled train split only"),
        "root": Option(str, None, nullable=True, help="a folder of unlabeled images (null: the dataset's own pool)"),
        "list": Option(str, None, nullable=True, help="or a file of '<path> <label or -1>' lines"),
    }, help="the unlabeled images"),
    "select": Section({
        "classes": Option(str, choices=tuple(ELIGIBLE_GROUPS), help="shot groups that may receive pool images"),
        "threshold": Option(float, ge=0, le=1, help="keep an image only if p of its class is >= threshold"),
        "top_n": Option(int, ge=0, nullable=True, help="at most N pool images per class (null: no limit)"),
        "cap_at_many": Option(bool, help="never lift a class above the many-shot threshold"),
    }, help="which pool images join the train set"),
    "vision": Section({
        "pretrained": Option(bool, help="start from the timm model's ImageNet weights"),
        "input_size": Option(int, ge=1, nullable=True, help="null: the timm model's own input size"),
    }, help="the vision-only model"),
    "loss": LOSS,
    "train": TRAINING,
    "augment": AUGMENT,
    "ensemble": ENSEMBLE.extend({
        "with_clip": Option(bool, help="the result is the vision model ensembled with the teacher CLIP"),
    }),
}
