"""Logits from elsewhere as a method's input: a finished run's saved logits, or a registered method
computed in this run. clip_ensemble's members and the post-hoc methods' sources are such sources;
the config keys that name them (``members``, ``source``, ``source_options``) are the methods' own.

A source is named by a spec: a run record (a ``.json`` that ``ltbench run --save-logits`` wrote),
or a method's registered name, configured as its own run of this dataset, backbone and seed
would be (plus ``options``, KEY=VALUE strings). Both are checked before any work: a record of
another dataset, a record without logits, a method that does not exist.
"""
from pathlib import Path
from typing import Sequence

import numpy as np

from ltbench.config import related_method_config
from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.engine.head_artifacts import LinearHead, read_linear_head
from ltbench.engine.memo import PerSplit
from ltbench.records.saved_logits import SavedRun


def is_saved_run(spec: str) -> bool:
    """Whether a source spec names a run record (a .json file) rather than a method."""
    return spec.endswith(".json")


class LogitsSource:
    """Logits of some split's images from a run or a method.

    ``name``: how the caller's record names it (the record path as given, or the method's name);
    ``method_name``: the method that made the logits; ``config``: its resolved config (the
    record's, or the computed method's); ``role``: the config key it came from, for the errors.
    ``fit(data, ctx)`` before ``logits(split)``: [len(split), C] float32, in split order.
    """

    name: str
    method_name: str
    config: dict
    role: str

    @property
    def method_class(self) -> type:
        """The registered class of the method that made the logits (a UserError if it is not
        registered in this ltbench): what its config's keys mean."""
        return registry.get(registry.METHODS, self.method_name)

    @property
    def backbone_label(self) -> str:
        raise NotImplementedError

    def fit(self, data, ctx) -> None:
        raise NotImplementedError

    def logits(self, split) -> np.ndarray:
        raise NotImplementedError

    def saves_linear_head(self) -> bool:
        """Whether the source leaves a linear head (``linear_head``), known before any work."""
        raise NotImplementedError

    def linear_head(self) -> LinearHead:
        raise NotImplementedError

    def summary(self) -> dict:
        """What the caller's record says about the source (details.posthoc's ``source*`` keys)."""
        raise NotImplementedError


class SavedLogits(LogitsSource):
    """A finished run read back: its record checked against this run's dataset at once, its class
    counts when the run's data is there (``fit``), each split's images when its logits are read."""

    def __init__(self, path: str, cfg: dict, role: str = "source"):
        self.role, self.name = role, str(path)
        self.run = SavedRun(path)
        self.run.require_every_class(f"a logits {role} (an ensemble or a post-hoc adjustment)")  # before any work
        self.record = self.run.record
        self.config = self.record.get("config") or {}
        self.method_name = self.record["method"]
        dataset = cfg["dataset"]["name"]
        if self.record.get("dataset") != dataset:
            raise UserError(f"{role} {self.run.record_path}: a run of dataset '{self.record.get('dataset')}', "
                            f"but this run is on '{dataset}'; give a {dataset} run's record")

    @property
    def backbone_label(self) -> str:
        return str(self.record.get("backbone", "?"))

    def fit(self, data, ctx) -> None:
        counts = [int(count) for count in self.record.get("class_counts", [])]
        if len(counts) != data.num_classes:
            raise UserError(f"{self.role} {self.run.record_path}: a run of {len(counts)} classes, but this "
                            f"{data.name} run has {data.num_classes}; give a run of the same dataset options")
        if counts != data.class_counts.tolist():
            raise UserError(f"{self.role} {self.run.record_path}: trained on other training class counts than "
                            f"this {data.name} run (other dataset options); give a run of the same dataset options")

    def logits(self, split) -> np.ndarray:
        return self.run.logits(split)

    def saves_linear_head(self) -> bool:
        """True once its linear head is read and checked (a missing head or a changed file is a
        one-line UserError, before any work)."""
        self.linear_head()
        return True

    def linear_head(self) -> LinearHead:
        # The record lies at <results>/runs/<dataset>/<run>.json.
        results_dir = Path(self.run.record_path).resolve().parent.parent.parent
        return read_linear_head(self.record, f"{self.role} {self.run.record_path}", results_dir)

    def summary(self) -> dict:
        return {"source": str(self.run.record_path), "source_run_id": self.record.get("run_id"),
                "source_method": self.method_name, "source_config_hash": self.record.get("config_hash")}


class ComputedLogits(LogitsSource):
    """A registered method fitted inside this run, with a context of its own (``ctx.for_part``): its
    extra metrics and details stay out of the caller's record, its work folder sits beside the
    caller's (so stages it shares by hash with its own runs, like BALLAD's phase A, are found),
    and its artifacts join the caller's record as '<name>.<artifact>'. Its logits are computed
    once per split (val serves both a choice on val and the val metrics)."""

    def __init__(self, name: str, cfg: dict, options: Sequence[str] = (), role: str = "source"):
        if name == cfg["method"]:
            raise UserError(f"{role}={name}: a run cannot take the logits of its own method; give another method "
                            "or a run record (.json)")
        self.role, self.name, self.method_name, self.cfg_options = role, name, name, list(options)
        self.config = related_method_config(name, cfg, self.cfg_options)
        self.method = registry.get(registry.METHODS, name)(self.config)
        self.ctx = None
        self._logits = PerSplit(self._predict)

    @property
    def backbone_label(self) -> str:
        return self.method.backbone_label

    def fit(self, data, ctx) -> None:
        self.ctx = ctx.for_part(self.name)
        self.method.fit(data, self.ctx)
        ctx.outputs.artifacts.update({f"{self.name}.{key}": value for key, value in self.ctx.outputs.artifacts.items()})

    def _predict(self, split) -> np.ndarray:
        return np.asarray(self.method.predict(split, self.ctx))

    def logits(self, split) -> np.ndarray:
        return self._logits(split)

    @property
    def method_class(self) -> type:
        return type(self.method)

    def saves_linear_head(self) -> bool:
        """What the method's class says for its config (``Method.saves_linear_head``)."""
        return bool(self.method_class.saves_linear_head(self.config))

    def linear_head(self) -> LinearHead:
        outputs = {"method": self.method_name, "artifacts": self.ctx.outputs.artifacts,
                   "details": self.ctx.outputs.details}
        return read_linear_head(outputs, f"{self.role} {self.method_name}")

    def summary(self) -> dict:
        return {"source": self.method_name, "source_method": self.method_name, "source_options": self.cfg_options}


def _check_spec(spec, role: str):
    if not isinstance(spec, str) or not spec:
        raise UserError(f"{role}={spec!r} must be a run record (.json written with --save-logits) or a method "
                        "name computed in this run, e.g. linear_probe")


def logits_source(spec: str, cfg: dict, options: Sequence[str] = (), role: str = "source") -> LogitsSource:
    """The source `spec` names, for a run of `cfg`: SavedLogits of a record (.json), or
    ComputedLogits of a registered method (with `options`, KEY=VALUE strings, over its defaults).
    `role` names the config key in the errors."""
    _check_spec(spec, role)
    return SavedLogits(spec, cfg, role) if is_saved_run(spec) else ComputedLogits(spec, cfg, options, role)


def source_backbone_label(spec: str, cfg: dict, options: Sequence[str] = (), role: str = "source") -> str:
    """The backbone label of a source from the config alone (``Method.backbone_label_for``): its
    record's (read, no model built), or the computed method's for its resolved config."""
    _check_spec(spec, role)
    if is_saved_run(spec):
        return str(SavedRun(spec).record.get("backbone", "?"))
    return registry.get(registry.METHODS, spec).backbone_label_for(related_method_config(spec, cfg, options))
