"""Protocols: how a suite's methods are compared (benchmarks/protocols/<name>.yaml), for
`ltbench sweep SUITE --protocol NAME`.

    description: ...             # optional
    trials: 20                   # a tuning budget: trials and / or
    budget: null                 #   device-hours per (method, dataset, backbone)
    objective: overall           # the val metric
    seeds: 3                     # final runs of the best settings
    allow_test_as_val: false

Every (method, dataset, backbone) of the suite is tuned with app/tune.py under the same budget,
then its best settings run with `seeds` seeds from the suite's first seed on; a method that
declares no search space runs its recipe with those seeds. The suite's cfg_options apply to the
trials and the final runs alike.
"""
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional

from ltbench.app.suite import find_named_yaml
from ltbench.config import benchmarks_dir, load_yaml
from ltbench.core.errors import UserError, close_matches_hint

PROTOCOL_KEYS = ("description", "trials", "budget", "objective", "seeds", "allow_test_as_val")


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    trials: Optional[int]
    budget: Optional[float]
    objective: str
    seeds: int
    allow_test_as_val: bool


def protocols_dir() -> Path:
    return benchmarks_dir() / "protocols"


def find_protocol(name_or_path: str) -> Path:
    return find_named_yaml(name_or_path, protocols_dir(), "protocol")


def load_protocol(path: Path) -> Protocol:
    """Read and check a protocol file: each mistake a one-line UserError naming the file and key."""
    from ltbench.app.tune import OBJECTIVES

    data = load_yaml(path)
    for key in data:
        if key not in PROTOCOL_KEYS:
            raise UserError(f"{path}: unknown key '{key}'{close_matches_hint(str(key), PROTOCOL_KEYS)}")
    trials, budget = data.get("trials"), data.get("budget")
    if trials is None and budget is None:
        raise UserError(f"{path}: give trials and / or budget (device-hours): the budget every method gets")
    if trials is not None and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise UserError(f"{path}: trials: expected an integer >= 1, got {trials!r}")
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
        raise UserError(f"{path}: budget: expected a positive number of device-hours, got {budget!r}")
    objective = data.get("objective", "overall")
    if objective not in OBJECTIVES:
        raise UserError(f"{path}: objective: '{objective}' is not a metric; choose one of {', '.join(OBJECTIVES)}")
    seeds = data.get("seeds", 3)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UserError(f"{path}: seeds: expected an integer >= 1, got {seeds!r}")
    allow = data.get("allow_test_as_val", False)
    if not isinstance(allow, bool):
        raise UserError(f"{path}: allow_test_as_val: expected true or false, got {allow!r}")
    return Protocol(Path(path).stem, str(data.get("description") or ""), trials,
                    None if budget is None else float(budget), objective, seeds, allow)


def run_protocol(suite, protocol: Protocol, options, slurm=None, executor=None) -> int:
    """Tune every (method, dataset, backbone) of `suite` under `protocol`, then its final seeds;
    options: the sweep's (app/sweep.py SweepOptions). A failing group is reported and the rest go
    on; returns 1 if any failed. slurm (SlurmOptions, --launcher slurm): each group's study
    workers (or, for a method with nothing to tune, its recipe seeds) are Slurm jobs instead; the
    same command with --launcher local once they are done finds every study finished and runs the
    best settings (executor: a submitit executor to use, for tests)."""
    from ltbench.app import tune
    from ltbench.config import runtime_overrides

    groups = {}
    for entry in suite.entries:
        groups.setdefault((entry.method, entry.dataset, entry.backbone), entry)
    overrides = runtime_overrides(options.data_root, options.split_dir, options.device, options.progress,
                                  options.save_logits)
    failures: List[str] = []
    for number, ((method, dataset, backbone), entry) in enumerate(groups.items(), 1):
        label = f"{method} on {dataset} ({backbone or 'configured backbone'})"
        print(f"[{number}/{len(groups)}] {protocol.name}: {label}", flush=True)
        request = tune.TuneRequest(method=method, dataset=dataset, trials=protocol.trials, budget=protocol.budget,
                                   objective=protocol.objective, seeds=protocol.seeds, out=Path(options.out),
                                   allow_test_as_val=protocol.allow_test_as_val, backbone=backbone, seed=entry.seed,
                                   overrides={key: value for key, value in overrides.items() if value is not None},
                                   options=(*entry.cfg_options, *options.cfg_options))
        try:
            try:
                if slurm is not None:
                    tune.submit_workers(request, slurm, executor=executor)
                else:
                    tune.tune(request)
            except tune.NoSearchSpace:
                if slurm is not None:
                    _submit_recipe_seeds(replace(request, final=True), options, slurm, suite.name, executor)
                else:
                    _recipe_seeds(replace(request, final=True), options)
        except UserError as error:
            failures.append(f"{label}: {error}")
            print(f"[{number}/{len(groups)}] failed: {error}", flush=True)
        except Exception as error:  # one group's crash must not stop the others
            traceback.print_exc()
            failures.append(f"{label}: {type(error).__name__}: {error}")
    print(f"sweep {suite.name} under {protocol.name}: {len(groups)} methods x datasets x backbones, "
          f"{len(failures)} failed" + "".join(f"\n  failed: {failure}" for failure in failures))
    if slurm is not None:
        print("once the jobs are done, rerun this command with --launcher local: it finds every study finished "
              "and runs the best settings with the protocol's seeds")
    return 1 if failures else 0


def _recipe_seeds(request, options) -> None:
    """A method with nothing to tune: its recipe, with the protocol's seeds."""
    from ltbench.app import runner
    from ltbench.config import RunRequest, resolve

    def config(seed):
        return resolve(RunRequest(method=request.method, dataset=request.dataset, backbone=request.backbone, seed=seed,
                                  overrides=request.overrides, options=request.options))

    first = int(config(request.seed)["seed"])  # the suite's seed, or the configured one
    for seed in range(first, first + request.seeds):
        cfg = config(seed)
        path, _ = runner.run(cfg, request.out, skip_existing=options.skip_existing)
        print(f"  {request.method} (no search space: its recipe) seed {cfg['seed']}: {path}", flush=True)


def _submit_recipe_seeds(request, options, slurm, suite_name: str, executor=None) -> None:
    """--launcher slurm: a method with nothing to tune runs its recipe seeds as one Slurm job."""
    from ltbench.app.sweep import slurm_executor

    # Jobs may start in another working directory than this one.
    request = replace(request, out=Path(request.out).resolve(), overrides={
        key: str(Path(value).resolve()) if key in ("dataset.root", "dataset.split_dir") and value else value
        for key, value in request.overrides.items()})
    folder = Path(request.out) / "slurm" / "protocol" / suite_name
    executor = executor or slurm_executor(folder, slurm, job_name=f"ltbench-{request.method}")
    job = executor.submit(_recipe_seeds, request, options)
    print(f"  job {job.job_id}: {request.method} (no search space: its recipe), {request.seeds} seeds", flush=True)
