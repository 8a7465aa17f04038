"""`ltbench tune`: the same tuning budget for every method (docs/comparisons.md).

An Optuna study (TPE, seeded from the run seed) searches the space a method declares beside its
recipe (the ``search:`` key of methods/<name>.yaml, every range tagged [paper] / [code] /
[ours]); each trial is an ordinary ltbench run evaluated on the val split, its record under
``<out>/tune/<study>/`` and its features shared through the cache. The study stops at N finished
trials or once its trials have spent H device-hours. The best settings then run on the
evaluation split with S seeds; those records carry ``tuned: {study, trials, budget, objective,
best_value, params}`` and are rows of their own in ``ltbench table``.

Test is never looked at while tuning: where the dataset's val split is its test split
(CIFAR-LT) tuning is refused unless --allow-test-as-val, which marks every record
written (``test_as_val: true``). Bad input fails in one line before any trial runs.
"""
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ltbench.config import RunRequest, method_files, resolve, resolve_run
from ltbench.config.layers import SEARCH_KEY
from ltbench.config.options import Option
from ltbench.core.errors import UserError
from ltbench.core.names import slug
from ltbench.core.seeding import derive_seed

# Val metrics a study can maximise (metrics.evaluate keys); mean_class is mean_per_class.
OBJECTIVES = ("overall", "many", "medium", "few", "mean_per_class", "mean_class", "top5", "macro_f1")
OBJECTIVE_ALIASES = {"mean_class": "mean_per_class"}
STORAGE_FILE = "study.db"
# A trial whose worker stops beating for this long is failed by the next worker that starts.
DEFAULT_STALE_AFTER_S = 120
# --pruner: none [ours] (every trial runs its whole recipe: a pruned trial's early val accuracy is
# a noisy guess of its end), or median: Optuna's MedianPruner with its defaults (a trial stops
# after an epoch whose val top-1 is below the median of earlier trials' at that epoch, once 5
# trials have finished).
PRUNERS = ("none", "median")


@dataclass(frozen=True)
class Range:
    """One searched option: a float / int range (log-uniform with log) or a list of choices."""

    key: str
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    integer: bool = False
    choices: Optional[tuple] = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)

    def extremes(self) -> list:
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass
class TuneRequest:
    method: str
    dataset: str
    trials: Optional[int] = None
    budget: Optional[float] = None  # device-hours
    objective: str = "overall"
    seeds: int = 3
    workers: int = 1
    storage: Optional[str] = None
    study: Optional[str] = None
    out: Path = Path("results")
    allow_test_as_val: bool = False
    final: bool = True  # run the best settings on the evaluation split afterwards
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    pruner: str = "none"
    worker_index: int = 0  # which local worker this process is (its sampler's seed)
    # What `ltbench run` takes besides.
    backbone: Optional[str] = None
    seed: Optional[int] = None
    overrides: dict = field(default_factory=dict)
    options: tuple = ()


class NoSearchSpace(UserError):
    """The method declares nothing to search (zero-shot CLIP): a protocol runs its recipe."""


def _tagged(doc_notes, path) -> bool:
    note = doc_notes.get(path)
    return bool(note and note.tags)


def search_space(method: str, schema) -> List[Range]:
    """The method's search space (methods/<name>.yaml ``search:``, the last file that has one),
    checked: every key an option the method has, every range non-empty and tagged."""
    files = method_files(method)
    docs = [doc for doc in files.docs if SEARCH_KEY in doc.data]
    if not docs:
        raise NoSearchSpace(f"methods/{method}.yaml declares no search space (a `{SEARCH_KEY}:` section of "
                        "option: {low, high[, log]} or {choices: [...]}); add one to tune it (docs/comparisons.md)")
    doc = docs[-1]
    space = doc.data[SEARCH_KEY]
    where = f"{doc.path}: {SEARCH_KEY}"
    if not isinstance(space, dict) or not space:
        raise UserError(f"{where} must map option keys to ranges, e.g. train.lr: {{low: 1.0e-4, high: 0.1, log: true}}")
    ranges = []
    for key, spec in space.items():
        key = str(key)
        option = _declared_option(schema, key)
        if option is None:
            raise UserError(f"{where}.{key}: {method} has no option '{key}'; search only options it declares "
                            f"(`ltbench list methods --options {method}`)")
        if not _tagged(doc.notes, (SEARCH_KEY, key)):
            raise UserError(f"{where}.{key}: the range has no source tag; say [paper], [code] or [ours] in its comment")
        ranges.append(_range(f"{where}.{key}", key, spec, option))
    return ranges


def _declared_option(schema, key: str) -> Optional[Option]:
    """The Option `key` sets: itself, or the spec option it is a field of (loss.tau of the loss
    spec, whose fields its type declares: a value it refuses fails when the range is resolved)."""
    parts = key.split(".")
    for depth in range(len(parts), 0, -1):
        entry = schema.entry(parts[:depth])
        if isinstance(entry, Option):
            return entry if depth == len(parts) or entry.is_spec else None
        if entry is not None:
            return None
    return None


def _range(where: str, key: str, spec, option: Option) -> Range:
    if not isinstance(spec, dict):
        raise UserError(f"{where}: expected {{low, high[, log]}} or {{choices: [...]}}, got {spec!r}")
    unknown = set(spec) - {"low", "high", "log", "choices"}
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; a range has low, high, "
                        "log or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: choices must be a non-empty list")
        return Range(key, choices=tuple(choices))
    low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (low, high))
    if not numbers:
        raise UserError(f"{where}: low and high must both be numbers, got {low!r} and {high!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UserError(f"{where}: the range [{low}, {high}] is empty or inverted; give low < high")
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got {low}")
    integer = option.type is int or (isinstance(option.type, tuple) and int in option.type and float not in option.type)
    return Range(key, float(low), float(high), log, integer=integer)


def _check_request(request: TuneRequest) -> str:
    objective = OBJECTIVE_ALIASES.get(request.objective, request.objective)
    if request.objective not in OBJECTIVES:
        raise UserError(f"--objective {request.objective}: not a metric; choose one of "
                        f"{', '.join(OBJECTIVES)}")
    if request.trials is None and request.budget is None:
        raise UserError("give --trials N and/or --budget DEVICE_HOURS: the study needs a budget")
    if request.trials is not None and request.trials <= 0:
        raise UserError(f"--trials {request.trials}: give at least 1 trial")
    if request.budget is not None and not (math.isfinite(request.budget) and request.budget > 0):
        raise UserError(f"--budget {request.budget}: give a positive number of device-hours")
    if request.seeds <= 0:
        raise UserError(f"--seeds {request.seeds}: give at least 1 seed")
    if request.workers <= 0:
        raise UserError(f"--workers {request.workers}: give at least 1 worker")
    if request.pruner not in PRUNERS:
        raise UserError(f"--pruner {request.pruner}: choose one of {', '.join(PRUNERS)}")
    return objective


def study_name(request: TuneRequest, cfg: dict) -> str:
    if request.study:
        if slug(request.study) != request.study:
            raise UserError(f"--study {request.study!r}: use letters, digits, '-', '_' and '.' only")
        return request.study
    return slug(f"{request.method}__{request.dataset}__{cfg['backbone']['clip']}__{request.objective}")


def _storage_url(request: TuneRequest, folder: Path) -> str:
    return request.storage or f"sqlite:///{(folder / STORAGE_FILE).resolve()}"


def open_storage(url: str, stale_after_s: float):
    """An Optuna storage for `url`: an RDB URL (sqlite:///, postgresql://, mysql://) with worker
    heartbeats, or journal:PATH (a journal file on a shared filesystem). One-line UserError when
    it is malformed or cannot be reached."""
    import optuna

    _quiet_optuna()
    heartbeat = max(1, int(stale_after_s // 4))
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):]).expanduser()
            if not path.parent.is_dir():
                raise UserError(f"--storage {url}: the folder {path.parent} does not exist")
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise UserError(f"--storage {url}: not a storage URL; give sqlite:///PATH, postgresql://..., "
                            "mysql://... or journal:PATH")
        return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=int(stale_after_s),
                                          engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else {})
    except UserError:
        raise
    except Exception as error:  # sqlalchemy's ArgumentError, OperationalError, a missing driver, ...
        text = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(f"--storage {url}: cannot open it ({type(error).__name__}: {text})") from None


def _val_is_test(cfg: dict) -> bool:
    """Whether the dataset's val split is its test split (the same images): built once to see."""
    from ltbench.data import build_dataset

    data = build_dataset(cfg["dataset"], complete=True)
    val, test = data.splits.get("val"), data.splits.get("test")
    if val is None:
        raise UserError(f"{cfg['dataset']['name']} has no val split to tune on")
    return test is not None and val.fingerprint == test.fingerprint


@dataclass
class Prepared:
    request: TuneRequest
    objective: str
    cfg: dict  # the recipe's resolved config
    space: List[Range]
    study: str
    folder: Path
    storage_url: str
    test_as_val: bool
    sampler_seed: int


def prepare(request: TuneRequest) -> Prepared:
    """Every check that can fail on the user's input, before any trial."""
    objective = _check_request(request)
    run_request = RunRequest(method=request.method, dataset=request.dataset, backbone=request.backbone,
                             seed=request.seed, overrides=request.overrides, options=tuple(request.options))
    resolved = resolve_run(run_request)
    cfg = resolved.config
    space = search_space(request.method, resolved.schema)
    # Each end of every range must be a value the option takes (an int option, a range of a
    # checked option): resolved once with it, as a trial would be.
    for searched in space:
        for value in searched.extremes():
            resolve(replace(run_request, options=(*run_request.options, (searched.key, _typed(searched, value)))))
    study = study_name(request, cfg)
    folder = Path(request.out) / "tune" / study
    test_as_val = _val_is_test(cfg)
    if test_as_val and not request.allow_test_as_val:
        raise UserError(f"{request.dataset}'s val split is its test split: tuning on it would look at test. "
                        "Pass --allow-test-as-val to tune anyway (every record it writes says test_as_val: true)")
    folder.mkdir(parents=True, exist_ok=True)
    url = _storage_url(request, folder)
    open_storage(url, request.stale_after_s)  # malformed or unreachable: fails here
    return Prepared(request, objective, cfg, space, study, folder, url, test_as_val,
                    derive_seed(int(cfg["seed"]), "tune", study))


def _typed(searched: Range, value):
    return int(round(value)) if searched.integer and value is not None else value


def _quiet_optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and fail_stale_trials are marked experimental (stable since Optuna 2.9).
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _load_study(prepared: Prepared, worker: int = 0):
    """The study (created on first use), its stale trials failed, with a TPE sampler for its next
    trial (``_next_sampler``)."""
    import optuna

    _quiet_optuna()
    storage = open_storage(prepared.storage_url, prepared.request.stale_after_s)
    study = optuna.create_study(study_name=prepared.study, storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner() if prepared.request.pruner == "median"
                                else optuna.pruners.NopPruner())
    # Trials a killed worker left RUNNING: failed once their heartbeat is stale, so they neither
    # count nor block the study (optuna.storages.fail_stale_trials), and listed as stale, so that
    # the sampler's draws go on as if the worker had not been killed (_ended_trials).
    running = {trial.number for trial in study.get_trials(deepcopy=False) if trial.state.name == "RUNNING"}
    optuna.storages.fail_stale_trials(study)
    stale = {trial.number for trial in study.get_trials(deepcopy=False)
             if trial.number in running and trial.state.name == "FAIL"}
    if stale:
        study.set_user_attr(STALE_TRIALS, sorted(set(study.user_attrs.get(STALE_TRIALS, [])) | stale))
    _next_sampler(study, prepared, worker)
    return study


STALE_TRIALS = "stale_trials"  # the study's user attribute: trials a killed worker left


def _ended_trials(study) -> list:
    """The study's ended trials (finished or failed) but those a killed worker left: what a study
    that was never killed would hold."""
    stale = set(study.user_attrs.get(STALE_TRIALS, []))
    return [trial for trial in study.get_trials(deepcopy=False)
            if trial.state.name in (*FINISHED, "FAIL") and trial.number not in stale]


MAX_FAILED_IN_A_ROW = 10  # [ours] a study whose last 10 ended trials all failed stops: the settings, not the draws


def _check_not_failing(study) -> None:
    """A one-line UserError when the study's last MAX_FAILED_IN_A_ROW ended trials failed (every
    draw diverges, or a setting fails every run): it would otherwise draw forever, since only
    finished trials count against --trials."""
    ended = [trial for trial in _ended_trials(study) if not trial.user_attrs.get("surplus")]
    tail = ended[-MAX_FAILED_IN_A_ROW:]
    if len(tail) == MAX_FAILED_IN_A_ROW and all(trial.state.name == "FAIL" for trial in tail):
        raise UserError(f"study {study.study_name}: its last {MAX_FAILED_IN_A_ROW} trials failed (see their errors "
                        "above); check the settings and the search space's ranges")


def _next_sampler(study, prepared: Prepared, worker: int) -> None:
    """A TPE sampler for the study's next trial, seeded from the run seed, the study, the worker and
    how many trials have ended (finished or failed, a killed one not counted): with one worker, the
    trial after k ended ones draws the same settings whether the study ran straight through or was
    killed and resumed (TPE learns from finished trials only, and a killed one is not counted, so
    the killed trial's settings are drawn again), and a trial after a failed one draws anew;
    several workers draw apart."""
    import optuna

    seed = derive_seed(prepared.sampler_seed, worker, len(_ended_trials(study))) % (1 << 32)  # numpy seeds: 32 bits
    study.sampler = optuna.samplers.TPESampler(seed=seed)


FINISHED = ("COMPLETE", "PRUNED")


def _spent(study) -> Tuple[int, float]:
    """(finished trials, device-hours the study's trials spent)."""
    finished = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name in FINISHED]
    hours = sum(float(trial.user_attrs.get("device_hours", 0.0)) for trial in study.get_trials(deepcopy=False))
    return len(finished), hours


def _budget_left(study, request: TuneRequest) -> bool:
    done, hours = _spent(study)
    if request.trials is not None and done >= request.trials:
        return False
    return request.budget is None or hours < request.budget


def _trial_options(prepared: Prepared, params: Dict[str, object]) -> tuple:
    # Trials run on val only: the test split is never evaluated while tuning.
    return (*prepared.request.options, *((key, value) for key, value in params.items()),
            ("eval_split", "val"), ("eval_val", False))


class SurplusTrial(Exception):
    """A trial started by one worker while the others' running trials already fill the study's
    --trials: failed before it runs, so that no study runs more than its trials."""


def _check_not_surplus(prepared: Prepared, trial) -> None:
    limit = prepared.request.trials
    if limit is None:
        return
    ahead = [other for other in trial.study.get_trials(deepcopy=False)
             if other.number < trial.number and other.state.name in (*FINISHED, "RUNNING")]
    if len(ahead) >= limit:
        trial.set_user_attr("surplus", True)
        raise SurplusTrial(f"trial {trial.number}: the study's {limit} trials are finished or running")


def run_trial(prepared: Prepared, trial) -> float:
    from ltbench.app import runner

    _check_not_surplus(prepared, trial)
    params = {searched.key: searched.suggest(trial) for searched in prepared.space}
    request = prepared.request
    cfg = resolve(RunRequest(method=request.method, dataset=request.dataset, backbone=request.backbone,
                             seed=request.seed, overrides=request.overrides, options=_trial_options(prepared, params)))
    annotations = {"trial": {"study": prepared.study, "number": trial.number}}
    if prepared.test_as_val:
        annotations["test_as_val"] = True
    # An identical trial (TPE may propose the same choices) reuses the record already there.
    path, record = runner.run(cfg, prepared.folder, skip_existing=True, annotations=annotations,
                              work_root=Path(request.out) / "work", val_reporter=_pruning_reporter(trial, request))
    if record is None:
        import json

        record = json.loads(path.read_text())
    cost = record.get("cost") or {}
    trial.set_user_attr("device_hours", float((cost.get("this_run") or {}).get("device_hours", 0.0)))
    trial.set_user_attr("record", str(path))
    value = record["metrics"].get(prepared.objective)
    if value is None:  # e.g. no few-shot class in val: a failed trial, not a zero
        raise UserError(f"trial {trial.number}: val has no value for {prepared.objective}")
    return float(value)


def _pruning_reporter(trial, request: TuneRequest):
    """RunContext.val_reporter for a trial: each epoch's val top-1 (of every trainer of the run, in
    order) to Optuna, which stops the trial (TrialPruned) where the study's pruner says so. None
    with --pruner none. The intermediate value is val top-1 whatever the study's objective."""
    if request.pruner == "none":
        return None
    import optuna

    reported = []

    def report(trainer: str, epoch: int, value: float) -> None:
        trial.report(float(value), step=len(reported))
        reported.append((trainer, epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {trial.number}: pruned after {trainer} epoch {epoch + 1} "
                                     f"(val top-1 {value:.2f})")

    return report


def work(prepared: Prepared, worker: int = 0) -> None:
    """One worker: trials until the study's budget is spent (shared with every other worker of the
    study through its storage)."""
    study = _load_study(prepared, worker)
    surplus = []

    def objective(trial):
        try:
            return run_trial(prepared, trial)
        except SurplusTrial:
            surplus.append(trial.number)
            raise

    # Until the other workers' running trials fill the study: nothing is left for this one.
    while _budget_left(study, prepared.request) and not surplus:
        _check_not_failing(study)
        _next_sampler(study, prepared, worker)
        study.optimize(objective, n_trials=1, catch=(UserError, SurplusTrial))


def _worker_command(request: TuneRequest, prepared: Prepared) -> List[str]:
    """`ltbench tune` for one more local worker of the same study (no final runs)."""
    command = [sys.executable, "-m", "ltbench", "tune", "--method", request.method, "--dataset", request.dataset,
               "--objective", request.objective, "--out", str(request.out), "--study", prepared.study,
               "--storage", prepared.storage_url, "--workers", "1", "--no-final", "--no-progress",
               "--stale-after", str(request.stale_after_s), "--pruner", request.pruner]
    for flag, value in (("--trials", request.trials), ("--budget", request.budget), ("--backbone", request.backbone),
                        ("--seed", request.seed), ("--data-root", request.overrides.get("dataset.root")),
                        ("--split-dir", request.overrides.get("dataset.split_dir")),
                        ("--device", request.overrides.get("runtime.device"))):
        if value is not None:
            command += [flag, str(value)]
    if request.allow_test_as_val:
        command.append("--allow-test-as-val")
    if request.options:
        command += ["--cfg-options", *(f"{key}={_yaml_value(value)}" for key, value in request.options)]
    return command


def _yaml_value(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def tune(request: TuneRequest, log=print) -> dict:
    """Run (or resume) the study, then the best settings on the evaluation split. Returns
    {study, storage, trials, device_hours, best_value, best_params, records}."""
    prepared = prepare(request)
    log(f"study {prepared.study}: {prepared.storage_url}")
    started = time.perf_counter()
    helpers = [subprocess.Popen(_worker_command(request, prepared) + ["--worker-index", str(index)])
               for index in range(1, request.workers)]
    try:
        work(prepared, request.worker_index)
    finally:
        failed = [helper for helper in helpers if helper.wait() != 0]
    if failed:
        log(f"warning: {len(failed)} of {len(helpers)} extra worker(s) failed; the study kept their finished trials")
    study = _load_study(prepared)
    done, hours = _spent(study)
    completed = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]
    if not completed:
        raise UserError(f"study {prepared.study}: no trial finished (see the errors above); nothing to run on "
                        f"{prepared.cfg['eval_split']}")
    best = study.best_trial
    log(f"study {prepared.study}: {done} trials, {hours:.4f} device-h, best val {prepared.objective} "
        f"{best.value:.2f} with {best.params} ({time.perf_counter() - started:.1f}s)")
    summary = {"study": prepared.study, "storage": prepared.storage_url, "trials": done, "device_hours": hours,
               "best_value": best.value, "best_params": dict(best.params), "records": []}
    if request.final:
        summary["records"] = final_runs(prepared, dict(best.params), done, best.value, log)
    return summary


def submit_workers(request: TuneRequest, slurm, executor=None, log=print) -> list:
    """--launcher slurm: request.workers Slurm jobs, each one worker of the study against its
    storage (checked here, before anything is submitted); no final runs: once the jobs are done, the
    same `ltbench tune` without --launcher finds the study finished and runs the best settings."""
    from ltbench.app.sweep import slurm_executor

    # Jobs may start in another working directory than this one.
    request = replace(request, out=Path(request.out).resolve(), overrides={
        key: str(Path(value).resolve()) if key in ("dataset.root", "dataset.split_dir") and value else value
        for key, value in request.overrides.items()})
    prepared = prepare(request)
    if prepared.storage_url.startswith("sqlite"):
        log("warning: SQLite on a shared filesystem may lock or corrupt with workers on several machines; "
            "prefer --storage journal:PATH or a postgresql:// / mysql:// URL")
    folder = Path(request.out) / "slurm" / "tune" / prepared.study
    executor = executor or slurm_executor(folder, slurm, job_name=f"ltbench-tune-{prepared.study}")
    with executor.batch():
        jobs = [executor.submit(work, prepared, index) for index in range(request.workers)]
    for job in jobs:
        log(f"job {job.job_id}: a worker of study {prepared.study}")
    log(f"logs under {folder}; once the jobs are done, rerun this command without --launcher to run the best "
        f"settings with {request.seeds} seeds")
    return jobs


def final_runs(prepared: Prepared, params: dict, trials: int, best_value: float, log=print) -> List[str]:
    """The best settings on the evaluation split with request.seeds seeds (the run seed and the
    ones after it); their records say how they were tuned."""
    from ltbench.app import runner

    request = prepared.request
    tuned = {"study": prepared.study, "trials": trials, "budget": request.budget, "objective": prepared.objective,
             "best_value": best_value, "params": params}
    annotations = {"tuned": tuned, **({"test_as_val": True} if prepared.test_as_val else {})}
    base_seed = int(prepared.cfg["seed"])
    paths = []
    for seed in range(base_seed, base_seed + request.seeds):
        cfg = resolve(RunRequest(method=request.method, dataset=request.dataset, backbone=request.backbone, seed=seed,
                                 overrides=request.overrides,
                                 options=(*request.options, *params.items())))
        path, record = runner.run(cfg, request.out, annotations=annotations, path_suffix=f"__tuned-{prepared.study}")
        log(f"tuned {request.method} seed {seed} on {cfg['eval_split']}: {record['metrics']['overall']:.2f}  "
            f"record: {path}")
        paths.append(str(path))
    return paths
