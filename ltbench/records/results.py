"""Run records: one JSON file per run, written atomically, found again by `ltbench table`.

A record holds everything needed to rebuild a table, regroup classes under another shot rule,
or trace a number back to its code and data: see ``make_record`` for the fields.
"""
import importlib
import json
import math
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import ltbench
from ltbench.config import config_hash as compute_config_hash
from ltbench.core.names import backbone_slug, slug

# 2: the config holds every declared option and is hashed whole (ltbench.config.hashing,
# CONFIG_HASH_VERSION 2). Records of schema 1 are read as they are: their config and hash stay
# theirs (a rerun of the same settings is a new row, with the new hash).
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
# What tables and comparisons read; a file without them is not a usable record.
REQUIRED_KEYS = (
    "schema", "run_id", "method", "dataset", "backbone", "seed", "eval_split",
    "config_hash", "class_counts", "metrics", "created",
)
REQUIRED_METRIC_KEYS = ("overall", "many", "medium", "few", "shot_rule", "per_class_accuracy")
GIT_TIMEOUT_S = 5


def run_id_for(method: str, backbone: str, config_hash: str, seed: int) -> str:
    return f"{slug(method)}__{backbone_slug(backbone)}__{config_hash[:10]}__seed{seed}"


def record_path(results_dir, dataset: str, method: str, backbone: str, config_hash: str, seed: int) -> Path:
    """<results_dir>/runs/<dataset>/<run id>.json; a rerun of the same configuration and seed replaces it."""
    return Path(results_dir) / "runs" / slug(dataset) / f"{run_id_for(method, backbone, config_hash, seed)}.json"


def _git(source_dir: Path, *args) -> Optional[str]:
    try:
        result = subprocess.run(
            # --no-optional-locks: `status` must not rewrite the index under someone's running git.
            ["git", "--no-optional-locks", "-C", str(source_dir), *args],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _git_state(source_dir: Path) -> Dict[str, Optional[object]]:
    """{'git_sha', 'git_dirty'} of the checkout at source_dir; None for both outside a checkout."""
    unknown = {"git_sha": None, "git_dirty": None}
    top_level_and_head = _git(source_dir, "rev-parse", "--show-toplevel", "HEAD")
    if top_level_and_head is None:
        return unknown
    top_level, head = top_level_and_head.splitlines()
    # An installed ltbench in a virtualenv inside some other repository would otherwise report
    # that repository's commit.
    if Path(top_level).resolve() != source_dir.resolve():
        return unknown
    status = _git(source_dir, "status", "--porcelain")
    return {"git_sha": head, "git_dirty": None if status is None else bool(status.strip())}


def _module_version(name: str) -> Optional[str]:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return getattr(module, "__version__", None)


def software_versions() -> dict:
    """ltbench version and commit, and the versions of the libraries that decide a run's numbers."""
    return {
        "ltbench": ltbench.__version__,
        **_git_state(Path(ltbench.__file__).resolve().parent.parent),
        "python": platform.python_version(),
        **{name: _module_version(name) for name in ("torch", "open_clip", "timm", "numpy")},
    }


def make_record(
    *, method: str, dataset: str, backbone: str, seed: int, eval_split: str, config: dict,
    versions: dict, class_counts, metrics: dict, timings: Dict[str, float], device: str,
    split_files: Optional[Dict[str, str]] = None, extra_metrics: Optional[Dict[str, dict]] = None,
    logits_path: Optional[str] = None, artifacts: Optional[Dict[str, str]] = None,
    details: Optional[dict] = None, shot_counts=None, per_sample: Optional[dict] = None,
    devices: Optional[dict] = None, stages: Optional[Dict[str, dict]] = None, numerics: Optional[dict] = None,
    class_names: Optional[List[str]] = None, source_records: Optional[Dict[str, Optional[str]]] = None,
    cost: Optional[dict] = None,
) -> dict:
    """The record of one run.

    metrics / extra_metrics values: metrics.evaluate() dicts (extra: a val split, phase A of a
    two-phase method, ...). timings: seconds per phase, including 'total'. split_files: split
    name -> SHA-256 of its split file (none for in-memory datasets). versions: software_versions().
    artifacts: name -> path of files the run left for later runs (a fine-tuned checkpoint).
    logits_path: the saved test / val logits (``ltbench.records.saved_logits``), relative to the record's
    folder. details: what a method reports about how it got its numbers (RunContext.details).
    shot_counts: the per-class counts many / medium / few were grouped by (class_counts unless
    the dataset names a reference profile). per_sample: the per-sample predictions file
    (``ltbench.records.per_sample.save_per_sample``: path relative to the record's folder, SHA-256,
    split fingerprints); every run has one, records from before them have none.
    devices: the hardware (engine/devices.py: type, name, count, driver, CUDA and cuDNN versions; CPU
    model and threads). stages: per timed phase, the precision it computed in and its peak device
    and host memory (engine/stage_stats.py). numerics: deterministic mode, TF32 and cuDNN settings
    (core/determinism.py). Records from before them have none of the three. class_names: the
    dataset's class names in class-index order (what the report's per-class table shows; records
    from before them have none). source_records: the run records the run read (a post-hoc source, an
    ensemble's saved members), each with the SHA-256 of its file (``--skip-existing`` reruns a run
    whose source changed). cost: what the run cost (engine/cost.py: parameters
    trained and frozen, images, optimiser steps, device-hours, peaks; this run, reused, from
    scratch); records from before it have none (schema 2 without ``cost`` reads as before).
    """
    config_hash = compute_config_hash(config)
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id_for(method, backbone, config_hash, seed),
        "method": method,
        "dataset": dataset,
        "backbone": backbone,
        "seed": seed,
        "eval_split": eval_split,
        "config": config,
        "config_hash": config_hash,
        "versions": versions,
        "split_files": split_files or {},
        "class_counts": [int(count) for count in class_counts],
        "class_names": None if class_names is None else [str(name) for name in class_names],
        "source_records": dict(source_records or {}),
        "shot_counts": [int(count) for count in (class_counts if shot_counts is None else shot_counts)],
        "metrics": metrics,
        "extra_metrics": extra_metrics or {},
        "timings": {phase: round(float(seconds), 3) for phase, seconds in timings.items()},
        "device": device,
        "devices": devices or {},
        "stages": stages or {},
        "numerics": numerics or {},
        "cost": cost,
        "logits_path": logits_path,
        "per_sample": per_sample,
        "artifacts": artifacts or {},
        "details": details or {},
        # Fixed width (always with microseconds): string order is time order, which dedupe relies on.
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
    }


def _record_problem(record) -> Optional[str]:
    """Why a parsed file is not a usable record, or None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        return f"missing keys: {', '.join(missing)}"
    if record["schema"] not in READABLE_SCHEMAS:
        return f"record schema {record['schema']!r}, this ltbench reads schemas {', '.join(map(str, READABLE_SCHEMAS))}"
    metrics = record["metrics"]
    if not isinstance(metrics, dict):
        return "'metrics' is not a JSON object"
    missing = [key for key in REQUIRED_METRIC_KEYS if key not in metrics]
    if missing:
        return f"missing metrics: {', '.join(missing)}"
    per_class, class_counts = metrics["per_class_accuracy"], record["class_counts"]
    if not isinstance(per_class, list) or not isinstance(class_counts, list):
        return "'per_class_accuracy' and 'class_counts' must be lists"
    # Regrouping under another shot rule pairs these two lists class by class.
    if len(per_class) != len(class_counts):
        return f"{len(per_class)} per-class accuracies for {len(class_counts)} class counts"
    return _value_problem(record, metrics)


# Record fields a table groups or sorts by: their JSON types.
TEXT_KEYS = ("run_id", "method", "dataset", "backbone", "eval_split", "config_hash", "created")


def _is_accuracy(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and 0 <= value <= 100)


def _value_problem(record: dict, metrics: dict) -> Optional[str]:
    """Types and ranges: text keys are strings, the seed an integer >= 0, accuracies in [0, 100]
    (a group without classes is null; overall never is)."""
    for key in TEXT_KEYS:
        if not isinstance(record[key], str):
            return f"'{key}' is {record[key]!r}, not a string"
    seed = record["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        return f"'seed' is {seed!r}, not an integer >= 0"
    if not _is_accuracy(metrics["overall"]):
        return f"metrics.overall is {metrics['overall']!r}, not an accuracy in [0, 100]"
    for group in ("many", "medium", "few"):
        if metrics[group] is not None and not _is_accuracy(metrics[group]):
            return f"metrics.{group} is {metrics[group]!r}, not an accuracy in [0, 100] or null"
    bad = next((value for value in metrics["per_class_accuracy"] if value is not None and not _is_accuracy(value)),
               None)
    if bad is not None:
        return f"metrics.per_class_accuracy holds {bad!r}, not an accuracy in [0, 100]"
    if not all(_is_count(count) for count in record["class_counts"]):
        return "'class_counts' must hold integers >= 0"
    return _hardware_problem(record)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


PRECISIONS = ("fp32", "bf16")


def _hardware_problem(record: dict) -> Optional[str]:
    """devices, stages and numerics (optional: records from before them have none): their types."""
    devices = record.get("devices", {})
    if not isinstance(devices, dict):
        return "'devices' is not a JSON object"
    if devices:
        if devices.get("type") not in ("cpu", "cuda"):
            return f"devices.type is {devices.get('type')!r}, not 'cpu' or 'cuda'"
        if not isinstance(devices.get("name"), str):
            return f"devices.name is {devices.get('name')!r}, not a string"
        if not _is_count(devices.get("count")) or devices["count"] < 1:
            return f"devices.count is {devices.get('count')!r}, not an integer >= 1"
    stages = record.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(stage, dict) for stage in stages.values()):
        return "'stages' must map each stage to a JSON object"
    for name, stage in stages.items():
        if stage.get("precision") not in PRECISIONS:
            return f"stages.{name}.precision is {stage.get('precision')!r}, not one of {', '.join(PRECISIONS)}"
        for key in ("peak_device_bytes", "peak_host_bytes"):
            value = stage.get(key)
            if not (_is_count(value) or (value is None and key == "peak_device_bytes")):
                return f"stages.{name}.{key} is {value!r}, not a byte count"
    cost = record.get("cost")
    if cost is not None and not isinstance(cost, dict):
        return "'cost' is not a JSON object"
    numerics = record.get("numerics", {})
    if not isinstance(numerics, dict):
        return "'numerics' is not a JSON object"
    if "deterministic" in numerics and not isinstance(numerics["deterministic"], bool):
        return f"numerics.deterministic is {numerics['deterministic']!r}, not true or false"
    return None


def record_problem(record) -> Optional[str]:
    """Why a parsed file is not a usable record (for tables and comparisons), or None."""
    return _record_problem(record)


def load_records(results_dir) -> List[Tuple[Path, dict]]:
    """(path, record) for every runs/**/*.json under results_dir, sorted by path.

    A file that cannot be read or is not a usable record is skipped with a one-line warning on
    stderr: one bad file must not keep the rest of a table from being built.
    """
    records = []
    for path in sorted((Path(results_dir) / "runs").glob("**/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # ValueError: invalid JSON or UTF-8
            print(f"warning: skipping {path}: cannot read a record ({error})", file=sys.stderr)
            continue
        problem = _record_problem(record)
        if problem:
            print(f"warning: skipping {path}: {problem}", file=sys.stderr)
            continue
        records.append((path, record))
    return records
