"""The post-hoc methods' options. Their values, each with its source:
benchmarks/methods/posthoc_*.yaml."""
from ltbench.api import Option

TAU_MAX = 10.0  # [ours] a sanity bound: beyond it every adjustment has long saturated


def _named(spec):
    return None if spec else "a run record (.json written with --save-logits) or a method name"


SOURCE_OPTIONS = {
    "source": Option(str, check=_named,
                     help="a finished run's record (.json written with --save-logits) or a method computed in this run"),
    "source_options": Option(list, items=str, help="KEY=VALUE options of a computed source, e.g. [train.epochs=10]"),
}
TAU_OPTIONS = {
    "tau": Option(float, ge=0, le=TAU_MAX, nullable=True, help="a fixed tau, or null: chosen on val from tau_grid"),
    "tau_grid": Option(list, items=float, ge=0, le=TAU_MAX, min_length=1, help="the tau values tried on val"),
}


# A target prior's numbers, inline or read from a file.
PRIOR_NUMBERS = Option(list, items=float, gt=0, min_length=1)


def _target_prior(value):
    if isinstance(value, str) and value:
        return None  # uniform, or a file read (and its numbers checked) before any work
    return None if PRIOR_NUMBERS.problem(value) is None else PRIOR_TEXT


PRIOR_TEXT = "uniform, a list of one number > 0 per class, or a .json / .npy / .txt file of them"
PRIOR_OPTIONS = {
    "target_prior": Option(object, check=_target_prior, allowed_text=PRIOR_TEXT,
                           help="the prior to correct to (normalised to sum to 1)"),
}
