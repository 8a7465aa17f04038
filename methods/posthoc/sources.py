"""Where a post-hoc method's logits come from: a logits source (ltbench.api.ensembles), named by
the config's ``source`` (a finished run's record, a .json written with ``--save-logits``, or a
registered method computed in this run with its own defaults for this dataset, backbone and seed)
plus ``source_options``; and whether a source was trained with plain cross-entropy."""
from typing import Optional

from ltbench.api import UserError
from ltbench.api.ensembles import LogitsSource, logits_source, source_backbone_label


def build_source(spec, cfg: dict) -> LogitsSource:
    return logits_source(spec, cfg, _options(cfg))


def source_label(spec, cfg: dict) -> str:
    """The source's backbone label from the config alone: its record's, or the computed method's
    (from its resolved config; no model is built)."""
    return source_backbone_label(spec, cfg, _options(cfg))


def _options(cfg: dict) -> list:
    options = cfg.get("source_options") or []
    if not (isinstance(options, list) and all(isinstance(option, str) for option in options)):
        raise UserError(f"source_options={options!r} must be a list of KEY=VALUE strings for the source "
                        "method, e.g. [train.epochs=10]")
    return options


# --- was the source trained with plain cross-entropy? -------------------------------------------
# Decided from the source's resolved config (the record's, or the computed method's): every `loss`
# in a section in use must be plain CE (and there must be one), every `sampler` instance-balanced,
# and no second stage may have changed the classifier after training (a `stage*` section with a
# `type` other than none, like the decoder's stage2). A method without any loss (zero-shot CLIP,
# an ensemble, a post-hoc method) has learnt no training prior to correct.

def _is_plain_ce(loss) -> bool:
    return loss == "ce" or (isinstance(loss, dict) and loss.get("type") == "ce" and set(loss) == {"type"})


def _is_instance(sampler) -> bool:
    return sampler == "instance" or (isinstance(sampler, dict) and sampler.get("type") == "instance"
                                     and set(sampler) == {"type"})


def _walk(section: dict, prefix: str = ""):
    """(dotted key, value) of every `loss` and `sampler` in sections that are in use."""
    for key, value in section.items():
        if key in ("dataset", "runtime", "backbone"):
            continue
        name = f"{prefix}{key}"
        if key in ("loss", "sampler"):
            yield name, value
        elif not isinstance(value, dict) or value.get("type") == "none":
            continue  # a setting, or a stage that is switched off (decoder stage2.type=none)
        elif key.startswith("stage") and "type" in value:
            yield f"{name}.type", value["type"]  # a second stage changed the classifier
        else:
            yield from _walk(value, f"{name}.")


def plain_ce_problem(config: dict) -> Optional[str]:
    """Why a config's method was not trained with plain CE on the long-tailed set, or None."""
    settings = list(_walk(config))
    for key, value in settings:
        if key.endswith(".type"):
            return f"{key}={value} changes its classifier after CE training"
        if key.endswith("loss") and not _is_plain_ce(value):
            return f"{key}={value!r} is not plain CE"
        if key.endswith("sampler") and not _is_instance(value):
            return f"{key}={value!r} is not instance-balanced sampling"
    if not any(key.endswith("loss") for key, _ in settings):
        return "it trains no classifier with a loss on the training set"
    return None
