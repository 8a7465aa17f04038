"""What a run cost: parameters trained and frozen, images through encoders, optimiser steps,
device time and memory; the record's ``cost`` block.

A run's ``CostMeter`` (RunOutputs.cost) is filled as the work happens, from numbers the host
already knows (batch shapes, steps it launched): counting never synchronises with the device.

- The trainer notes, per trainer (``Trainer.name``, prefixed by the part of a run it trains in),
  every parameter of the module it trains (trained: what it optimises; frozen: the rest of that
  module), its optimiser steps and the samples of its training steps; samples that are image
  batches (a 4-D float tensor among the inputs) went forward and backward through a module that
  takes images, i.e. an image encoder.
- ``encode_split`` counts the images it runs through a frozen model (features, tokens,
  predictions on images).
- Reused work is counted apart: cache hits of image features and tokens (images this run did not
  encode), and finished stages loaded from the stage store (engine/stages.py writes each stage's
  own cost beside it, which a reuse adds here).

At the end of the run ``cost_block`` adds the parameters of every module the method holds (found
by walking its attributes; anything not trained is frozen), the wall time per stage, the peaks
per stage (engine/stage_stats.py) and device-hours (devices x wall seconds / 3600).
"""
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch

COST_VERSION = 1
# Counters that add up across trainers and stages.
TRAINING_COUNTERS = ("optimizer_steps", "samples", "image_samples")


def _empty_training() -> dict:
    return {"optimizer_steps": 0, "samples": 0, "image_samples": 0, "epochs": 0, "resumed_epochs": 0,
            "trained_parameters": 0, "frozen_parameters": 0, "modules": {}}


@dataclass
class CostMeter:
    """The running counts of one run (shared by the parts of the run, see RunContext.for_part)."""

    training: Dict[str, dict] = field(default_factory=dict)
    encoder_images: int = 0  # images forward through a frozen model (encode_split)
    reused_encoder_images: int = 0  # images whose features / tokens came from the cache
    reused_stages: Dict[str, dict] = field(default_factory=dict)  # stage folder -> its stored cost
    # id(parameter) -> (numel, trained) of every live parameter of a module a trainer trained: a
    # parameter trained by any trainer stays trained. When a parameter is freed (a module built and
    # dropped inside fit) its entry moves to `freed_parameters`: Python may give its id to a new
    # tensor, which must not inherit the old entry.
    parameters: Dict[int, tuple] = field(default_factory=dict)
    freed_parameters: List[tuple] = field(default_factory=list)

    def trainer(self, name: str) -> dict:
        return self.training.setdefault(name, _empty_training())

    def note_module(self, name: str, model: torch.nn.Module, trained_ids) -> None:
        """The module trainer `name` trains: its parameters per top-level child, trained or frozen."""
        entry = self.trainer(name)
        modules: Dict[str, dict] = {}
        trained = frozen = 0
        seen = set()
        for param_name, param in model.named_parameters(remove_duplicate=True):
            if id(param) in seen:
                continue
            seen.add(id(param))
            is_trained = id(param) in trained_ids
            child = param_name.split(".", 1)[0] if "." in param_name else "(own)"
            counts = modules.setdefault(child, {"trained": 0, "frozen": 0})
            counts["trained" if is_trained else "frozen"] += param.numel()
            trained += param.numel() if is_trained else 0
            frozen += 0 if is_trained else param.numel()
            previous = self.parameters.get(id(param))
            if previous is None:
                watch = weakref.finalize(param, self._parameter_freed, id(param))
                watch.atexit = False
            self.parameters[id(param)] = (param.numel(), is_trained or bool(previous and previous[1]))
        entry.update(trained_parameters=trained, frozen_parameters=frozen, modules=modules)

    def _parameter_freed(self, key: int) -> None:
        entry = self.parameters.pop(key, None)
        if entry is not None:
            self.freed_parameters.append(entry)

    def snapshot(self) -> dict:
        """The counters now (for the cost of a stage: the difference of two snapshots)."""
        return {"training": {name: dict(entry) for name, entry in self.training.items()},
                "encoder_images": self.encoder_images, "reused_encoder_images": self.reused_encoder_images}


def stage_cost(before: dict, meter: CostMeter, seconds: float, devices: int) -> dict:
    """The cost of a stage trained between `before` (a snapshot) and now: what a later run that
    reuses the stage saved."""
    training = {}
    for name, entry in meter.training.items():
        old = before["training"].get(name, _empty_training())
        delta = {key: entry[key] - old.get(key, 0) for key in TRAINING_COUNTERS}
        if any(delta.values()):
            training[name] = {**delta, "trained_parameters": entry["trained_parameters"]}
    return {"version": COST_VERSION, "training": training,
            "encoder_images": meter.encoder_images - before["encoder_images"],
            # Features / tokens the stage read from the cache: encoded by some earlier run.
            "reused_encoder_images": meter.reused_encoder_images - before["reused_encoder_images"],
            "wall_seconds": round(float(seconds), 3), "devices": int(devices),
            "device_hours": devices * float(seconds) / 3600.0}


def stage_cost_path(stage_file: Path) -> Path:
    return Path(stage_file).with_name(Path(stage_file).name + ".cost.json")


def read_stage_cost(stage_file: Path) -> Optional[dict]:
    """The cost stored beside a finished stage, or None (a stage from before costs were kept)."""
    try:
        cost = json.loads(stage_cost_path(stage_file).read_text())
    except (OSError, ValueError):
        return None
    return cost if isinstance(cost, dict) else None


# Attribute walks stop at this depth and skip these types (they hold no modules of the method).
_WALK_DEPTH = 4
_LONGEST_WALKED = 256
_LEAVES = (str, bytes, int, float, bool, type(None), Path, torch.Tensor)


def held_modules(method) -> Dict[str, list]:
    """attribute name -> the torch modules reachable from that attribute of `method` (through
    wrappers, lists, dicts and parts of the run), so that every method is counted alike,
    whatever it calls its encoder and heads."""
    found: Dict[str, list] = {}
    visited = set()

    def walk(value, owner: str, depth: int):
        if isinstance(value, _LEAVES) or id(value) in visited or depth > _WALK_DEPTH:
            return
        visited.add(id(value))
        if isinstance(value, torch.nn.Module):
            found.setdefault(owner, []).append(value)
            return
        if isinstance(value, dict):
            items = value.values()
        elif isinstance(value, (list, tuple, set)):
            if len(value) > _LONGEST_WALKED:  # a split's paths, say: no modules in there
                return
            items = value
        elif _is_plugin_object(value):
            items = vars(value).values()
        else:
            return
        for item in items:
            walk(item, owner, depth + 1)

    for name, value in vars(method).items():
        if name in ("cfg", "config"):
            continue
        walk(value, name, 0)
    return found


def _is_plugin_object(value) -> bool:
    """An object of a method plug-in's own classes (not a library's): walked for its modules."""
    module = type(value).__module__ or ""
    return hasattr(value, "__dict__") and not isinstance(value, type) and \
        module.split(".")[0] not in ("builtins", "numpy", "torch", "collections", "pathlib", "typing")


def parameter_counts(method, meter: CostMeter) -> dict:
    """{trained, frozen, modules: {attribute: {trained, frozen}}}: every parameter of the modules
    the method holds and of those its trainers trained, each counted once; trained = optimised by
    a trainer of this run."""
    modules: Dict[str, dict] = {}
    counted = set()
    for owner, owned in held_modules(method).items():
        counts = {"trained": 0, "frozen": 0}
        for module in owned:
            for param in module.parameters():
                if id(param) in counted:
                    continue
                counted.add(id(param))
                trained = meter.parameters.get(id(param), (0, False))[1]
                counts["trained" if trained else "frozen"] += param.numel()
        if counts["trained"] or counts["frozen"]:
            modules[owner] = counts
    # Parameters a trainer trained that the method does not keep (a module built inside fit).
    loose = {"trained": 0, "frozen": 0}
    # (A copy of the dict: the garbage collector may free a parameter, and edit it, meanwhile.)
    for key, (numel, trained) in list(meter.parameters.items()):
        if key not in counted:
            loose["trained" if trained else "frozen"] += numel
    for numel, trained in list(meter.freed_parameters):
        loose["trained" if trained else "frozen"] += numel
    if loose["trained"] or loose["frozen"]:
        modules["(trainer only)"] = loose
    return {"trained": sum(counts["trained"] for counts in modules.values()),
            "frozen": sum(counts["frozen"] for counts in modules.values()),
            "modules": modules}


def _sum_training(training: Dict[str, dict]) -> dict:
    return {key: sum(int(entry.get(key, 0)) for entry in training.values()) for key in TRAINING_COUNTERS}


def cost_block(meter: CostMeter, method, timings: Dict[str, float], stages: Dict[str, dict],
               devices: int, device_type: str) -> dict:
    """The record's ``cost``: this run's work, what it reused, and the sum (from scratch)."""
    wall = float(timings.get("total", sum(seconds for phase, seconds in timings.items())))
    parameters = parameter_counts(method, meter)
    reused_training = {f"{stage}/{name}": entry for stage, cost in meter.reused_stages.items()
                       for name, entry in (cost.get("training") or {}).items()}
    reused_trained = sum(int(entry.get("trained_parameters", 0)) for entry in reused_training.values())
    this_run = {**_sum_training(meter.training), "encoder_images_forward": meter.encoder_images,
                "wall_seconds": round(wall, 3), "device_hours": devices * wall / 3600.0}
    reused_hours = sum(float(cost.get("device_hours", 0.0)) for cost in meter.reused_stages.values())
    reused = {**_sum_training(reused_training),
              "encoder_images_forward": meter.reused_encoder_images + sum(
                  int(cost.get("encoder_images", 0)) + int(cost.get("reused_encoder_images", 0))
                  for cost in meter.reused_stages.values()),
              "device_hours": reused_hours,
              "stages": sorted(meter.reused_stages),
              # Cached features and stages stored by an older ltbench have no time of their own.
              "device_hours_known": meter.reused_encoder_images == 0 and all(
                  "device_hours" in cost and not cost.get("reused_encoder_images")
                  for cost in meter.reused_stages.values())}
    from_scratch = {key: this_run[key] + reused[key] for key in (*TRAINING_COUNTERS, "encoder_images_forward",
                                                                 "device_hours")}
    peaks = [stage.get("peak_device_bytes") for stage in stages.values() if stage.get("peak_device_bytes") is not None]
    return {
        "version": COST_VERSION,
        # A reused stage's parameters are frozen in this run but were trained once: from scratch
        # they count as trained.
        "parameters": {**parameters, "trained_in_reused_stages": reused_trained,
                       "trained_from_scratch": parameters["trained"] + reused_trained,
                       "frozen_from_scratch": max(0, parameters["frozen"] - reused_trained)},
        "training": meter.training,
        "this_run": this_run,
        "reused": reused,
        "from_scratch": from_scratch,
        "devices": int(devices),
        "device_type": device_type,
        "wall_seconds": {phase: round(float(seconds), 3) for phase, seconds in timings.items()},
        "peak_device_bytes": max(peaks) if peaks else None,
        "peak_host_bytes": max((int(stage.get("peak_host_bytes") or 0) for stage in stages.values()), default=0),
        "peaks": {name: {"device_bytes": stage.get("peak_device_bytes"), "host_bytes": stage.get("peak_host_bytes")}
                  for name, stage in stages.items()},
    }
