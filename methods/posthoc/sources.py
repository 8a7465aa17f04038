"""Where a post-hoc method's logits come from: a finished run's saved logits (its record, a .json
written with ``--save-logits``) or a registered method computed in this run with its own defaults
for this dataset, backbone and seed (plus ``source_options``)."""
from typing import Optional

import numpy as np

from ltbench.api import (METHODS, ComputedMethod, PerSplit, SavedRun, UserError, read_linear_head, registered,
                         related_method_config)


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
        options = _options(cfg)
        super().__init__(name, cfg, options)
        self.method_name, self.options = name, list(options)
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
        return {"source": self.method_name, "source_method": self.method_name, "source_options": self.options}


def _check_spec(spec):
    if not isinstance(spec, str) or not spec:
        raise UserError(f"source={spec!r} must be a run record (.json written with --save-logits) or a method "
                        "name computed in this run, e.g. linear_probe")


def build_source(spec, cfg: dict):
    _check_spec(spec)
    return SavedSource(spec, cfg) if is_saved(spec) else ComputedSource(spec, cfg)


def source_label(spec, cfg: dict) -> str:
    """The source's backbone label from the config alone: its record's, or the computed method's
    (from its resolved config; no model is built)."""
    _check_spec(spec)
    if is_saved(spec):
        return SavedSource(spec, cfg).backbone_label
    return registered(METHODS, spec).backbone_label_for(related_method_config(spec, cfg, _options(cfg)))


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
