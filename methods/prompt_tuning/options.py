"""prompt_tuning's options. Their values, each with its source: benchmarks/methods/prompt_tuning.yaml
(prompt_tuning_bs.yaml on top)."""
from ltbench.api import TRAINING, Option, Section
from ltbench.api.options import AUGMENT, LOSS
from ltbench.methods.prompt_tuning.prompts import CLASS_POSITIONS, INITS

OPTIONS = {
    "context": Section({
        "n_ctx": Option(int, ge=1, help="M, the learnt context vectors (at the text tower's width)"),
        "class_specific": Option(bool, help="one context per class (CoOp's CSC); false: one for all classes"),
        "class_position": Option(str, choices=CLASS_POSITIONS, help="where the class name goes among the context"),
        "init": Option(str, choices=INITS, help="random: N(0, init_std); phrase: the words of init_phrase"),
        "init_std": Option(float, ge=0, help="the std of the random init"),
        "init_phrase": Option(str, help="init phrase: its words fill the last slots of the context"),
        "checkpoint": Option(str, None, nullable=True,
                             help="a context.pt of an earlier run: load it and evaluate, no training"),
    }, help="the learnt prompt context"),
    "logit_scale": Option(float, gt=0, also=("clip",),
                          help="clip: CLIP's learnt temperature, frozen; or a number"),
    "text_chunk": Option(int, ge=1, help="prompts per text-tower chunk in a step (memory, not numbers)"),
    "checkpointing": Option(bool, help="activation checkpointing per chunk (memory, at a second text pass)"),
    "loss": LOSS,
    "train": TRAINING.extend({
        "batch_size": Option(int, ge=1, help="images per step"),
        "augment": AUGMENT,
    }),
}
