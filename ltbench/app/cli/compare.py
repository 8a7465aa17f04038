"""`ltbench compare`: B - A with paired bootstrap intervals and tests, from per-sample predictions."""
import os


def register(commands):
    compare = commands.add_parser(
        "compare", help="compare runs: differences with paired bootstrap CIs, McNemar and seed tests",
        description="Compare every run after the first with the first (B - A). Each RUN is a record path "
                    "or a leaderboard row selector method[:backbone][@config-hash] within --dataset.")
    compare.add_argument("runs", nargs="+", metavar="RUN")
    compare.add_argument("--dataset", help="dataset of the row selectors")
    compare.add_argument("--results", default="results", help="results folder (default: results)")
    compare.add_argument("--bootstrap", type=int, default=10_000, metavar="N", help="bootstrap resamples (default: 10000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    compare.add_argument("--seed-test", choices=("t", "wilcoxon"), default="t",
                         help="test across seeds when configurations have several (default: paired t)")
    compare.add_argument("--correction", choices=("holm", "bonferroni", "none"), default="holm",
                         help="multiple-comparison correction with more than two runs (default: holm)")
    compare.add_argument("--shot-rule", choices=("standard", "oltr"), help="shot groups (default: as A recorded)")
    compare.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    compare.add_argument("--json", action="store_true", help="print the full result as JSON instead of a table")
    compare.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                         help="threads for the bootstrap (the numbers do not depend on it; default: 2)")
    compare.set_defaults(handler=command)


def command(args) -> int:
    from ltbench.core.errors import UserError
    from ltbench.records import compare, results

    if len(args.runs) < 2:
        raise UserError("compare needs at least two runs (record paths or row selectors)")
    loaded = None
    if any(not run.endswith(".json") and not os.path.isfile(run) for run in args.runs):
        loaded = results.load_records(args.results)
    sides = [compare.resolve_side(run, args.results, args.dataset, loaded) for run in args.runs]
    result = compare.compare(sides, resamples=args.bootstrap, seed=args.seed, seed_test=args.seed_test,
                             correction=args.correction, shot_rule=args.shot_rule, threads=max(1, args.threads))
    print(compare.render(result, "json" if args.json else args.format), end="")
    return 0
