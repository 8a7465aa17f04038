"""Where a post-hoc method's logits come from: a finished run's saved logits (its record, a .json
written with ``--save-logits``) or a registered method computed in this run with its own defaults
for this dataset, backbone and seed (plus ``source_options``)."""
from typing import Optional

import numpy as np

from ltbench.api import (
    METHODS,
    ComputedMethod,
    PerSplit,
    SavedRun,
    UserError,
    read_linear_head,
    registered,
    related_method_config,
)


def is_saved(spec: str) -> bool:
    return spec.endswith(".json")


class SavedSource:
    """A finished run read back: checked against this run's dataset before any work."""

    def __init__(self, path: str, cfg: dict):
        self.run = SavedRun(path)
        self.run.require_every_class("a post-hoc source")  # before any work
        self.record = self.run.record
        self.config = self.record.get("config") or {}
        self.method_name = self.record["method"]
        # Its method's options say which of the record's config values are losses and samplers.
        self.options = registered(METHODS, self.method_name).declared_options()
        dataset = cfg["dataset"]["name"]
        if self.record.get("dataset") != dataset:
            raise UserError(f"source {self.run.record_path}: a run of dataset '{self.record.get('dataset')}', "
                            f"but this run is on '{dataset}'; give a {dataset} run's record")

    @property
    def backbone_label(self) -> str:
        return str(self.record.get("backbone", "?"))

    def fit(self, data, ctx):
        counts = [int(count) for count in self.record.get("class_counts", [])]
        if len(counts) != data.num_classes:
            raise UserError(f"source {self.run.record_path}: a run of {len(counts)} classes, but this "
                            f"{data.name} run has {data.num_classes}; give a run of the same dataset options")
        if counts != data.class_counts.tolist():
            raise UserError(f"source {self.run.record_path}: trained on other class counts than this {data.name} "
                            "run (other dataset options); give a run of the same dataset options")

    def logits(self, split) -> np.ndarray:
        return self.run.logits(split)

    def linear_head(self):
        return read_linear_head(self.record, f"source {self.run.record_path}")

    def summary(self) -> dict:
        return {"source": str(self.run.record_path), "source_run_id": self.record.get("run_id"),
                "source_method": self.method_name, "source_config_hash": self.record.get("config_hash")}


class ComputedSource(ComputedMethod):
    """A registered method fitted in this run (api.ComputedMethod), with its options recorded."""

    def __init__(self, name: str, cfg: dict):
        if name == cfg["method"]:
            raise UserError(f"source={name}: a post-hoc method cannot adjust itself; give another method or a "
                            "run record (.json)")
        options = cfg["source_options"]
        super().__init__(name, cfg, options)
        self.method_name, self.source_options = name, list(options)
        self.options = type(self.method).declared_options()
        self._logits = PerSplit(super().logits)

    @property
    def backbone_label(self) -> str:
        return self.method.backbone_label

    def logits(self, split) -> np.ndarray:
        return self._logits(split)  # once per split: val serves the choice of tau and the val metrics

    def saves_linear_head(self) -> bool:
        """What the method says before it runs (its optional ``saves_linear_head(cfg)``)."""
        ask = getattr(type(self.method), "saves_linear_head", None)
        return bool(ask and ask(self.config))

    def linear_head(self):
        outputs = {"method": self.method_name, "artifacts": self.ctx.outputs.artifacts,
                   "details": self.ctx.outputs.details}
        return read_linear_head(outputs, f"source {self.method_name}")

    def summary(self) -> dict:
        return {"source": self.method_name, "source_method": self.method_name, "source_options": self.source_options}


def build_source(spec, cfg: dict):
    return SavedSource(spec, cfg) if is_saved(spec) else ComputedSource(spec, cfg)


def source_label(spec, cfg: dict) -> str:
    """The source's backbone label from the config alone: its record's, or the computed method's
    (from its resolved config; no model is built)."""
    if is_saved(spec):
        return SavedSource(spec, cfg).backbone_label
    return registered(METHODS, spec).backbone_label_for(related_method_config(spec, cfg, cfg["source_options"]))


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
