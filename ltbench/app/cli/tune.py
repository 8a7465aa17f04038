"""`ltbench tune`: an Optuna study of a method's search space on val, then the best settings on
the evaluation split (app/tune.py, docs/comparisons.md)."""
import argparse
from pathlib import Path

from ltbench.app.cli.common import add_data_options, add_runtime_options
from ltbench.app.cli.sweep import add_slurm_options, slurm_options


def register(commands):
    tune = commands.add_parser(
        "tune", help="tune a method on val with a fixed budget (Optuna), then run the best settings with several seeds",
        description="Search the space methods/<METHOD>.yaml declares under `search:` with Optuna's TPE sampler, "
                    "each trial an ordinary run evaluated on val, until --trials trials finished or --budget "
                    "device-hours were spent; then run the best settings on the evaluation split with --seeds seeds. "
                    "A second `tune` of the same study resumes it.")
    tune.add_argument("--method", required=True)
    tune.add_argument("--dataset", required=True)
    tune.add_argument("--backbone", help="as in `ltbench run`")
    tune.add_argument("--seed", type=int, help="the run seed: trials run with it, and it seeds the sampler")
    tune.add_argument("--trials", type=int, help="stop once N trials finished")
    tune.add_argument("--budget", type=float, metavar="DEVICE_HOURS", help="stop once the trials spent this many device-hours")
    tune.add_argument("--objective", default="overall",
                      help="the val metric to maximise: overall (default), many, medium, few, mean_class, top5, macro_f1")
    tune.add_argument("--seeds", type=int, default=3, help="seeds of the final runs of the best settings (default: 3)")
    tune.add_argument("--workers", type=int, default=1, help="local worker processes on the study (default: 1)")
    tune.add_argument("--storage", help="Optuna storage: sqlite:///PATH, postgresql://..., mysql://... or journal:PATH "
                                        "(default: sqlite under <out>/tune/<study>/)")
    tune.add_argument("--study", help="study name (default: METHOD__DATASET__BACKBONE__OBJECTIVE)")
    tune.add_argument("--allow-test-as-val", action="store_true",
                      help="tune where val is the test split (CIFAR-LT); every record written says so")
    tune.add_argument("--no-final", action="store_true", help="only the study: no runs of the best settings")
    tune.add_argument("--stale-after", type=float, default=120, metavar="SECONDS",
                      help="a trial whose worker sent no heartbeat for this long is failed (default: 120)")
    tune.add_argument("--pruner", default="none", choices=("none", "median"),
                      help="stop a trial early from its per-epoch val top-1 (median: Optuna's MedianPruner; "
                           "default none: every trial runs its whole recipe)")
    tune.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)  # set for --workers' helpers
    tune.add_argument("--launcher", choices=("local", "slurm"), default="local",
                      help="local: the workers run here; slurm: --workers Slurm jobs on the study (needs submitit)")
    add_slurm_options(tune)
    add_data_options(tune)
    tune.add_argument("--out", default="results", help="results folder (default: results)")
    add_runtime_options(tune)
    tune.set_defaults(handler=command)


def command(args) -> int:
    from ltbench.app.tune import TuneRequest, tune
    from ltbench.config import parse_cfg_options, runtime_overrides
    from ltbench.core.versions import require_versions

    require_versions()
    request = TuneRequest(method=args.method, dataset=args.dataset, trials=args.trials, budget=args.budget,
                          objective=args.objective, seeds=args.seeds, workers=args.workers, storage=args.storage,
                          study=args.study, out=Path(args.out), allow_test_as_val=args.allow_test_as_val,
                          final=not args.no_final, stale_after_s=args.stale_after, pruner=args.pruner, worker_index=args.worker_index, backbone=args.backbone,
                          seed=args.seed,
                          overrides=runtime_overrides(args.data_root, args.split_dir, args.device, not args.no_progress),
                          options=tuple(parse_cfg_options(args.cfg_options)))
    if args.launcher == "slurm":
        from ltbench.app.tune import submit_workers

        submit_workers(request, slurm_options(args))
        return 0
    tune(request)
    return 0
