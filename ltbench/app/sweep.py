"""`ltbench sweep`: every entry of a suite, run here one after another or submitted as Slurm jobs.

Both launchers run an entry with ``run_entry``: the config is resolved as `ltbench run` resolves
it and ``runner.run`` writes the record, so a swept run and a hand-typed `ltbench run` with the
same flags give the same record. Entries whose record exists are skipped unless forced, so a
sweep that stopped half-way is restarted by running it again.
"""
import json
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ltbench.app import runner
from ltbench.app.suite import Suite, SweepEntry
from ltbench.config import resolve, runtime_overrides
from ltbench.core.errors import UserError
from ltbench.metrics import format_scores


@dataclass(frozen=True)
class SweepOptions:
    """What every entry gets besides its own method / dataset / backbone / seed / options."""

    out: str = "results"
    data_root: Optional[str] = None
    split_dir: Optional[str] = None
    cfg_options: Tuple[Tuple[str, object], ...] = ()  # the command line's: after the suite's, so they win
    device: Optional[str] = None
    progress: bool = True
    save_logits: object = False  # False, True (float32) or a format name (records/saved_logits.py)
    skip_existing: bool = True
    resume: bool = False


@dataclass(frozen=True)
class SlurmOptions:
    partition: str
    gpus_per_node: int = 1
    cpus_per_task: int = 8  # runtime.num_workers auto then takes 7 image-decoding workers (core/cpus.py)
    mem_gb: Optional[float] = None
    timeout_min: int = 24 * 60
    array_parallelism: Optional[int] = None  # None: submitit's default
    additional: Dict[str, str] = field(default_factory=dict)  # any other sbatch option


@dataclass(frozen=True)
class Outcome:
    status: str  # 'ran', 'skipped' (record exists) or 'failed'
    message: str


def resolve_entry(entry: SweepEntry, options: SweepOptions) -> dict:
    """The entry's config, resolved as `ltbench run` resolves the same flags."""
    overrides = runtime_overrides(options.data_root, options.split_dir, options.device, options.progress,
                                  options.save_logits)
    return resolve(entry.request(overrides, options.cfg_options))


def run_entry(entry: SweepEntry, options: SweepOptions) -> Outcome:
    """Run one entry and write its record; what both launchers (and each Slurm job) call."""
    cfg = resolve_entry(entry, options)
    path, record = runner.run(cfg, Path(options.out), skip_existing=options.skip_existing, resume=options.resume)
    if record is None:
        return Outcome("skipped", f"record exists: {path}")
    return Outcome("ran", f"{format_scores(record['metrics'])}  [{record['timings']['total']:.1f}s]  {path}")


def _summary(suite: Suite, failures: List[Tuple[SweepEntry, str]], counts: str) -> str:
    lines = [f"sweep {suite.name}: {len(suite.entries)} entries: {counts}"]
    lines += [f"  failed: {entry.label}: {message}" for entry, message in failures]
    return "\n".join(lines)


def run_locally(suite: Suite, options: SweepOptions) -> int:
    """Every entry in turn, in this process. A failing entry is reported and the sweep goes on;
    returns 1 if any entry failed."""
    failures, ran, skipped = [], 0, 0
    total = len(suite.entries)
    for number, entry in enumerate(suite.entries, 1):
        print(f"[{number}/{total}] {entry.label}", flush=True)
        try:
            outcome = run_entry(entry, options)
        except UserError as error:
            outcome = Outcome("failed", str(error))
        except Exception as error:  # a crash in one entry (a bug, out of memory) must not stop the rest
            traceback.print_exc()
            outcome = Outcome("failed", f"{type(error).__name__}: {error}")
        print(f"[{number}/{total}] {outcome.status}: {outcome.message}", flush=True)
        if outcome.status == "failed":
            failures.append((entry, outcome.message))
        ran += outcome.status == "ran"
        skipped += outcome.status == "skipped"
    print(_summary(suite, failures, f"{ran} ran, {skipped} skipped (record exists), {len(failures)} failed"))
    return 1 if failures else 0


def plan(suite: Suite, options: SweepOptions, on_this_machine: bool = False):
    """[(entry, record path or None, problem or None, current)]: configs resolved, nothing run.
    current: its record exists and stands for it (runner.record_is_current: the same source records).
    on_this_machine: the entries run here (the local launcher), so what this machine cannot do
    (gpu_jpeg without a CUDA GPU, a CUDA device it does not have) is a problem too."""
    from ltbench.engine.context import resolve_device

    planned = []
    for entry in suite.entries:
        try:
            cfg = resolve_entry(entry, options)
            path = runner.planned_record_path(cfg, options.out)
            if on_this_machine:
                runner.check_decoding(cfg, resolve_device(cfg["runtime"]["device"]))
            planned.append((entry, path, None, runner.record_is_current(cfg, path)))
        except UserError as error:
            planned.append((entry, None, str(error), False))
    return planned


def _plan_status(path: Optional[Path], problem: Optional[str], current: bool, options: SweepOptions) -> str:
    if problem is not None:
        return "error"
    if current:
        return "skip" if options.skip_existing else "rerun"
    return "rerun" if path.exists() else "run"


def print_plan(suite: Suite, options: SweepOptions, launcher: str = "local") -> int:
    """`--dry-run`: one line per entry: what a sweep would do with it (run; skip or, with --force,
    rerun: its record exists; error: why it would fail), the entry, and its extra options."""
    print(f"suite {suite.name} ({suite.path}): {len(suite.entries)} entries"
          + (f": {suite.description}" if suite.description else ""))
    width = len(str(len(suite.entries)))
    failing = 0
    for number, (entry, path, problem, current) in enumerate(plan(suite, options, on_this_machine=launcher == "local"), 1):
        extra = " ".join(f"{key}={json.dumps(value)}" for key, value in (*entry.cfg_options, *options.cfg_options))
        line = f"[{number:>{width}}] {_plan_status(path, problem, current, options):<5}  {entry.label}"
        print(line + (f"  {extra}" if extra else "") + (f": {problem}" if problem else ""))
        failing += problem is not None
    if failing:  # a dry run that finds entries which would fail says so in its exit status
        print(f"{failing} of {len(suite.entries)} entries would fail", file=sys.stderr)
        return 1
    return 0


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("the slurm launcher needs submitit: pip install -e \".[slurm]\" "
                        "(or pip install submitit)") from None
    return submitit


def slurm_executor(folder: Path, slurm: SlurmOptions, job_name: str):
    """A submitit executor for `slurm`; jobs of one submission batch go out as one job array."""
    submitit = import_submitit()
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    except RuntimeError as error:  # no srun: not on a Slurm cluster
        raise UserError(f"--launcher slurm: {error} Run the sweep on a Slurm login node, or "
                        "without --launcher to run it here") from None
    executor.update_parameters(
        name=job_name, timeout_min=slurm.timeout_min, gpus_per_node=slurm.gpus_per_node,
        cpus_per_task=slurm.cpus_per_task, mem_gb=slurm.mem_gb, tasks_per_node=1, nodes=1,
        slurm_partition=slurm.partition, slurm_array_parallelism=slurm.array_parallelism,
        slurm_additional_parameters=dict(slurm.additional) or None)
    return executor


def _submit(executor, entries: List[SweepEntry], options: SweepOptions):
    from submitit.core.utils import FailedJobError

    try:
        with executor.batch():
            return [executor.submit(run_entry, entry, options) for entry in entries]
    except FailedJobError as error:  # sbatch said no: an unknown partition, account, ...
        reason = (str(error).strip().splitlines() or ["no reason given"])[-1]
        raise UserError(f"sbatch refused the jobs: {reason}") from None


def submit_to_slurm(suite: Suite, options: SweepOptions, slurm: SlurmOptions, executor=None):
    """Submit every entry to run (configs resolved here, so a mistake fails now, not on the
    cluster). Returns (exit code, submitted jobs)."""
    # Jobs may start in another working directory than this one.
    options = replace(options, **{name: str(Path(getattr(options, name)).resolve())
                                  for name in ("out", "data_root", "split_dir") if getattr(options, name)})
    folder = Path(options.out) / "slurm" / suite.name
    # First: a missing submitit is reported before any config is resolved.
    executor = executor or slurm_executor(folder, slurm, job_name=f"ltbench-{suite.name}")
    failures, skipped, to_submit = [], 0, []
    for entry, _path, problem, current in plan(suite, options):
        if problem is not None:
            failures.append((entry, problem))
            print(f"not submitted: {entry.label}: {problem}")
        elif current and options.skip_existing:
            skipped += 1
        else:
            to_submit.append(entry)
    jobs = []
    if to_submit:
        jobs = _submit(executor, to_submit, options)
        for job, entry in zip(jobs, to_submit):
            print(f"job {job.job_id}: {entry.label}")
        print(f"logs under {folder}; `ltbench table --results {options.out}` once the jobs are done")
    counts = (f"{len(jobs)} submitted to partition {slurm.partition}, {skipped} skipped (record exists), "
              f"{len(failures)} failed")
    print(_summary(suite, failures, counts))
    return (1 if failures else 0), jobs
