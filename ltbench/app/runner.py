"""One run: config -> data -> method.fit / predict -> metrics -> an atomically written record.

Everything that can fail on user input (names, paths, files, weights) fails before a record is
written, so an error never touches results already on disk.
"""
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ltbench.config import config_hash
from ltbench.core import distributed, registry
from ltbench.core.atomic import probe_writable, publish_together, write_json_atomic
from ltbench.core.chunks import row_chunks
from ltbench.core.cpus import cpu_threads, loader_workers, set_cpu_threads
from ltbench.core.determinism import apply_determinism, numerics
from ltbench.core.errors import UserError
from ltbench.core.locks import RunLock
from ltbench.core.seeding import seed_everything
from ltbench.data import build_dataset
from ltbench.data.base import FileSplit
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext, describe_device, resolve_device
from ltbench.engine.cost import cost_block
from ltbench.engine.devices import device_facts
from ltbench.metrics import evaluate, per_sample_summary
from ltbench.models.factory import backbone_details
from ltbench.records.per_sample import per_sample_file_for, save_per_sample
from ltbench.records.results import make_record, record_path, software_versions
from ltbench.records.saved_logits import logits_file_for, logits_format, save_logits


def check_image_root(data, split_names, dataset_name):
    """File-based splits need their image root before any work starts."""
    for name in split_names:
        split = data.splits.get(name)
        if not isinstance(split, FileSplit):
            continue
        if split.root is None:
            raise UserError(f"{dataset_name}: no image root given; pass --data-root DIR (the folder the "
                            f"paths in {split.list_file.name} are relative to); see `ltbench data check {dataset_name}`")
        if not Path(split.root).is_dir():
            raise UserError(f"{dataset_name}: data root not found: {split.root}; pass --data-root DIR "
                            f"(see README, data preparation, and `ltbench data check {dataset_name}`)")


def check_decoding(cfg: dict, device) -> None:
    """gpu_jpeg decodes on the run's CUDA device: refused, before any work, where there is none."""
    if not cfg["gpu_jpeg"]:
        return
    if device.type != "cuda":
        reason = "this machine has no CUDA GPU" if not torch.cuda.is_available() else f"the run's device is {device}"
        raise UserError(f"gpu_jpeg=true decodes JPEGs on a CUDA GPU, but {reason}; unset it "
                        "(gpu_jpeg=false) to decode with Pillow on the CPU")
    if cfg["jpeg_draft"]:
        raise UserError("gpu_jpeg=true and jpeg_draft=true are two JPEG decoders (GPU, Pillow's draft mode); "
                        "set one of them to false")


def check_out_dir(out_dir, needed_bytes: int = 16 << 20):
    """--out must be a folder this process can write, with some space free: checked before any
    work, so a run never trains only to fail writing its record."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; pass --out DIR")
    try:
        free = probe_writable(out)
    except OSError as error:
        raise UserError(f"--out {out}: cannot write there ({error.strerror or error}); pass --out DIR "
                        "with a folder you can write") from None
    if free < needed_bytes:
        raise UserError(f"--out {out}: only {free // 1024} kB free on its disk; free some space or pass "
                        "--out DIR on another disk")


def split_hashes(data):
    """SHA-256 of each split file; for in-memory datasets, of each split's images and labels."""
    return data.split_files or {name: split.fingerprint for name, split in data.splits.items()}


def data_identity(data, method_cls) -> dict:
    """What an epoch checkpoint must agree with to be resumed, besides its training settings:
    every split's fingerprint (split file and image files) and the method's code (its module,
    or every .py file of its package) with the ltbench version."""
    import hashlib
    import inspect

    import ltbench

    digest = hashlib.sha256(ltbench.__version__.encode())
    try:
        source = Path(inspect.getfile(method_cls))
        module = sys.modules.get(method_cls.__module__)
        package = getattr(module, "__package__", None) or ""
        files = sorted(source.parent.glob("*.py")) if package.count(".") >= 2 else [source]
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    except (TypeError, OSError):  # a class without a source file (defined in an exec'd module)
        digest.update(f"{method_cls.__module__}.{method_cls.__qualname__}".encode())
    return {"splits": {name: split.fingerprint for name, split in sorted(data.splits.items())},
            "method_code": digest.hexdigest()}


def validate_logits(logits, split, num_classes, method_name):
    """The method's logits, checked: [len(split), num_classes] (a wrong shape is a bug of the
    method) and finite (a training that diverged: a one-line UserError, no record of metrics that
    mean nothing; a tuning trial fails instead of scoring)."""
    logits = np.asarray(logits)
    if logits.shape != (len(split), num_classes):
        raise RuntimeError(f"method '{method_name}' returned logits of shape {logits.shape} for the "
                           f"{split.name} split; expected ({len(split)}, {num_classes})")
    bad = sum(int(np.count_nonzero(~np.isfinite(logits[rows]))) for rows in row_chunks(*logits.shape))
    if bad:
        raise UserError(f"method '{method_name}' gave {bad} non-finite logits (NaN or inf) on the {split.name} "
                        "split: its training diverged; lower the learning rate or check the settings")
    return logits


def planned_record_path(cfg: dict, out_dir) -> Path:
    """Where the record of `cfg` goes, from the resolved config alone (no method is built)."""
    method_cls = registry.get(registry.METHODS, cfg["method"])
    return record_path(out_dir, cfg["dataset"]["name"], cfg["method"], method_cls.backbone_label_for(cfg),
                       config_hash(cfg), int(cfg["seed"]))


def source_digests(cfg: dict) -> dict:
    """{record path as the config names it: SHA-256 of its file (None: not there)} of the run
    records a run of `cfg` reads (``Method.source_records``): what its own record is keyed on
    besides its config."""
    import hashlib

    method_cls = registry.get(registry.METHODS, cfg["method"])
    digests = {}
    for spec in method_cls.source_records(cfg):
        source = Path(spec).expanduser()
        digests[str(spec)] = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
    return digests


def record_is_current(cfg: dict, path: Path, digests: Optional[dict] = None) -> bool:
    """Whether the record at `path` (the planned path of `cfg`) stands for a run of `cfg` now: it
    exists, and every run record it read is the file it read (a post-hoc run of a source that was
    redone since is not current: --skip-existing recomputes it)."""
    if not path.exists():
        return False
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # unreadable: the run writes it anew
    return (existing.get("source_records") or {}) == (source_digests(cfg) if digests is None else digests)


@dataclass
class RunPlan:
    """What a run settles before any work: where its record goes, what it reads besides its config
    (source records), its device, the logits format, the cache and the lock."""

    path: Path
    sources: dict
    device: torch.device
    saved_format: Optional[str]
    cache: ArrayCache
    lock: Optional[RunLock]


@dataclass
class Predictions:
    """What the method gave: the run's context and data, the evaluation split's logits, and val's
    where val is a split of its own."""

    ctx: RunContext
    data: object
    method: object
    eval_split: object
    logits: np.ndarray
    val: object
    val_logits: Optional[np.ndarray]
    started: float


@dataclass
class Evaluation:
    metrics: dict
    extra_metrics: dict
    saved: dict  # split name -> (logits, split): what --save-logits stores
    summaries: dict  # split name -> (per-sample summary, fingerprint)


def run(cfg: dict, out_dir: Path, skip_existing: bool = False, resume: bool = False,
        annotations: Optional[dict] = None, path_suffix: str = "", work_root: Optional[Path] = None,
        val_reporter=None):
    """Run one configuration (a resolved config: every option checked, ltbench.config.resolution);
    returns (record path, record or None when skipped). Plan (checks before any work), fit and
    predict (every process), evaluate and publish (rank 0).

    annotations: fields the record carries besides (``tuned``, ``trial``, ``test_as_val``:
    app/tune.py); path_suffix: added to the record's file name (a tuned run beside the recipe run
    of the same settings); work_root: the folder of work folders and shared stages (default
    <out_dir>/work; a tuning trial shares its results folder's); val_reporter: RunContext's (a
    tuning trial's pruner)."""
    method_cls = registry.get(registry.METHODS, cfg["method"])
    planned = plan_run(cfg, out_dir, skip_existing, path_suffix)
    if not isinstance(planned, RunPlan):
        return planned  # (path, None) skipped, or (path, record) of an identical run that finished meanwhile
    try:
        predictions = fit_and_predict(cfg, planned, method_cls(cfg), Path(work_root or Path(out_dir) / "work"),
                                      resume, val_reporter)
        if not distributed.is_main():
            # Every process predicted (the predictions are gathered); metrics, the per-sample file and
            # the record are rank 0's work alone: the others would compute the same numbers, each an
            # N x C softmax, on a CPU that torchrun shares among them.
            return planned.path, None
        record = publish(cfg, planned, predictions, evaluate_predictions(cfg, predictions), annotations)
    finally:
        # Also when the run fails or is stopped: a process that goes on (a tuning worker's next
        # trial, a test) must be able to run the same settings again.
        if planned.lock is not None:
            planned.lock.release()
    return planned.path, record


def plan_run(cfg: dict, out_dir: Path, skip_existing: bool, path_suffix: str = ""):
    """A RunPlan, after every check that needs no data or model; or the run's result where there
    is nothing to do: (path, None) for a current record with --skip-existing, (path, record) when
    an identical run finished while this one waited for its lock."""
    registry.get(registry.DATASETS, cfg["dataset"]["name"])
    path = planned_record_path(cfg, out_dir)
    if path_suffix:
        path = path.with_name(f"{path.stem}{path_suffix}{path.suffix}")
    sources = source_digests(cfg)  # each source record read and hashed once a run
    if skip_existing and record_is_current(cfg, path, sources):
        return path, None
    if skip_existing and path.exists():
        print(f"ltbench: {path} was computed from other versions of its source records; recomputing it",
              file=sys.stderr)
    device = resolve_device(cfg["runtime"]["device"])
    check_decoding(cfg, device)
    apply_determinism(cfg["deterministic"])  # before CUDA starts (distributed.setup, in fit_and_predict)
    saved_format = logits_format(cfg["runtime"]["save_logits"])
    cpu_threads(cfg["runtime"]["cpu_threads"])  # checked before any work
    check_out_dir(out_dir)
    cache = ArrayCache(cfg["runtime"]["cache_dir"])
    cache.check_writable()
    lock = _run_lock(path, out_dir)
    if lock is not None and lock.finished_meanwhile:
        # An identical run wrote this record while this one waited for it: the same numbers.
        print(f"ltbench: an identical run finished meanwhile; using its record {path}", file=sys.stderr)
        return path, json.loads(path.read_text())
    return RunPlan(path, sources, device, saved_format, cache, lock)


def fit_and_predict(cfg: dict, planned: RunPlan, method, work_root: Path, resume: bool,
                    val_reporter=None) -> Predictions:
    """The run's context, its data, ``method.fit`` and the logits of the evaluation split (and of
    val where it is a split of its own). Under torchrun every process runs this;
    core/distributed.py splits the work."""
    started = time.perf_counter()
    runtime, seed = cfg["runtime"], int(cfg["seed"])
    ctx = RunContext(device=distributed.setup(planned.device, runtime["collective_timeout_minutes"]), seed=seed,
                     work_dir=work_root / planned.path.stem, cache=planned.cache,
                     amp=bool(cfg["amp"]), num_workers=loader_workers(runtime["num_workers"]),
                     progress=bool(runtime["progress"]), compile=bool(runtime["compile"]),
                     resume=resume, jpeg_draft=cfg["jpeg_draft"], gpu_jpeg=cfg["gpu_jpeg"],
                     deterministic=cfg["deterministic"], val_reporter=val_reporter)
    set_cpu_threads(runtime["cpu_threads"])  # torchrun's OMP_NUM_THREADS=1 would leave cores idle
    with ctx.timer("data"), distributed.main_first():  # rank 0 downloads what is missing
        data = build_dataset(cfg["dataset"], complete=True)
        eval_name = cfg["eval_split"]
        evaluated = [eval_name] + (["val"] if cfg["eval_val"] and eval_name != "val" else [])
        check_image_root(data, ["train", *evaluated], cfg["dataset"]["name"])
        eval_split = data.split(eval_name)

    ctx = replace(ctx, data_identity=data_identity(data, type(method)))
    # The CLIP backbone every method builds from backbone.clip, resolved the way create_clip does.
    ctx.outputs.details["backbone"] = backbone_details(cfg["backbone"]["clip"])
    seed_everything(seed)
    with ctx.timer("fit"):
        method.fit(data, ctx)
    with ctx.timer("predict"):
        logits = validate_logits(method.predict(eval_split, ctx), eval_split, data.num_classes, cfg["method"])
    val = data.splits.get("val")
    # Some datasets evaluate on val itself (iNat's val file is its test split; CIFAR-LT's val is test).
    separate_val = "val" in evaluated and val is not None and val.fingerprint != eval_split.fingerprint
    val_logits = validate_logits(method.predict(val, ctx), val, data.num_classes, cfg["method"]) \
        if separate_val else None
    return Predictions(ctx, data, method, eval_split, logits, val, val_logits, started)


def evaluate_predictions(cfg: dict, predictions: Predictions) -> Evaluation:
    """Metrics of the evaluation split, val and what the method reported besides (a phase's
    logits), with the per-sample summaries and the logits --save-logits stores."""
    p, data = predictions, predictions.data
    class_counts = data.grouping_counts  # the training counts, or the dataset's reference profile
    summary = per_sample_summary(p.logits, p.eval_split.labels)
    metrics = evaluate(p.logits, p.eval_split.labels, class_counts, cfg["shot_rule"], train_counts=data.class_counts,
                       summary=summary)
    extra_metrics = {}
    saved = {p.eval_split.name: (p.logits, p.eval_split)}
    summaries = {p.eval_split.name: (summary, p.eval_split.fingerprint)}
    if p.val_logits is not None:
        val_summary = per_sample_summary(p.val_logits, p.val.labels)
        extra_metrics["val"] = evaluate(p.val_logits, p.val.labels, class_counts, cfg["shot_rule"],
                                        train_counts=data.class_counts, summary=val_summary)
        saved["val"] = (p.val_logits, p.val)
        summaries["val"] = (val_summary, p.val.fingerprint)
    elif p.val is not None and p.val.fingerprint == p.eval_split.fingerprint:
        saved["val"] = (p.logits, p.val)  # the same images (stored once): an ensemble can still choose weights on "val"
        summaries["val"] = (summary, p.val.fingerprint)
    for label, (reported_logits, split) in p.ctx.outputs.reported.items():
        extra_metrics[label] = evaluate(validate_logits(reported_logits, split, data.num_classes, cfg["method"]),
                                        split.labels, class_counts, cfg["shot_rule"], train_counts=data.class_counts)
    return Evaluation(metrics, extra_metrics, saved, summaries)


def publish(cfg: dict, planned: RunPlan, predictions: Predictions, evaluation: Evaluation,
            annotations: Optional[dict] = None) -> dict:
    """The record, its per-sample file and its logits, published together at the end: a disk that
    fills up (or turns read-only) while they are written leaves none of them, and a record never
    names a file that is not there."""
    path, ctx, data = planned.path, predictions.ctx, predictions.data
    with publish_together():
        per_sample = save_per_sample(per_sample_file_for(path), evaluation.summaries)
        logits_path = None
        if planned.saved_format:
            save_logits(logits_file_for(path), evaluation.saved, planned.saved_format)
            logits_path = logits_file_for(path).name
        ctx.outputs.timings["total"] = time.perf_counter() - predictions.started
        cost = cost_block(ctx.outputs.cost, predictions.method, ctx.outputs.timings, ctx.outputs.stages,
                          devices=distributed.get_world_size(), device_type=ctx.device.type)
        record = make_record(method=cfg["method"], dataset=cfg["dataset"]["name"],
                             backbone=predictions.method.backbone_label, seed=int(cfg["seed"]),
                             eval_split=cfg["eval_split"], config=cfg, versions=software_versions(),
                             class_counts=data.class_counts, shot_counts=data.grouping_counts,
                             metrics=evaluation.metrics, class_names=data.class_names, timings=ctx.outputs.timings,
                             device=describe_device(ctx.device), split_files=split_hashes(data),
                             extra_metrics=evaluation.extra_metrics, artifacts=ctx.outputs.artifacts,
                             details=ctx.outputs.details, logits_path=logits_path, per_sample=per_sample,
                             devices=device_facts(ctx.device), stages=ctx.outputs.stages, numerics=numerics(),
                             source_records=planned.sources, cost=cost)
        record.update(annotations or {})
        write_json_atomic(path, record)
    return record


def _run_lock(path: Path, out_dir) -> "RunLock | None":
    """The run's lock, so that identical runs (one record path) started together on one machine do
    not train into one work folder at once; none under torchrun (its processes run one run together)."""
    if max(distributed.get_world_size(), distributed.launched_world_size()) > 1:
        return None
    import hashlib
    import tempfile

    # Outside the results folder, which a run that fails on bad input leaves as it was.
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:32]
    return RunLock.acquire(path, Path(tempfile.gettempdir()) / "ltbench-locks" / f"{name}.lock")
