"""Where a post-hoc method's logits come from: a logits source (ltbench.api.ensembles), named by
the config's ``source`` (a finished run's record, a .json written with ``--save-logits``, or a
registered method computed in this run with its own defaults for this dataset, backbone and seed)
plus ``source_options``; and whether a source was trained with plain cross-entropy."""
from typing import Optional

from ltbench.api.ensembles import LogitsSource, logits_source, source_backbone_label


def build_source(spec, cfg: dict) -> LogitsSource:
    return logits_source(spec, cfg, cfg["source_options"])


def source_label(spec, cfg: dict) -> str:
    """The source's backbone label from the config alone: its record's, or the computed method's
    (from its resolved config; no model is built)."""
    return source_backbone_label(spec, cfg, cfg["source_options"])


# --- was the source trained with plain cross-entropy? -------------------------------------------
# Decided from the source's resolved config (the record's, or the computed method's), read through
# its method's declared options, not by key names: every loss option (a LOSS) of a section in use
# must be plain CE (and there must be one), every sampler option instance-balanced, and no
# section that can be switched off (a second stage, off when its type is none) may be on: it
# changes the classifier after training. A method without any loss (zero-shot CLIP, an ensemble,
# a post-hoc method) has learnt no training prior to correct.

def _is_plain_ce(loss) -> bool:
    return loss == "ce" or (isinstance(loss, dict) and loss.get("type") == "ce" and set(loss) == {"type"})


def _is_instance(sampler) -> bool:
    return sampler == "instance" or (isinstance(sampler, dict) and sampler.get("type") == "instance"
                                     and set(sampler) == {"type"})


def _value(config: dict, dotted: str):
    node = config
    for key in dotted.split(".") if dotted else ():
        node = node.get(key) if isinstance(node, dict) else None
    return node


def plain_ce_problem(config: dict, options) -> Optional[str]:
    """Why a config's method (its declared `options`) was not trained with plain CE on the
    long-tailed set, or None."""
    off = [path for path, section in options.sections() if section.is_off(_value(config, path))]
    for path, section in options.sections():
        if section.off_when is not None and path not in off:
            key = f"{path}.{section.off_when[0]}"
            return f"{key}={_value(config, key)} changes its classifier after CE training"
    losses = 0
    for dotted, option in options.walk():
        if not option.is_spec or any(dotted.startswith(path + ".") for path in off):
            continue
        value = _value(config, dotted)
        if option.type.what == "loss":
            losses += 1
            if not _is_plain_ce(value):
                return f"{dotted}={value!r} is not plain CE"
        if option.type.what == "sampler" and not _is_instance(value):
            return f"{dotted}={value!r} is not instance-balanced sampling"
    if not losses:
        return "it trains no classifier with a loss on the training set"
    return None
