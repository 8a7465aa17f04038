"""`ltbench report`: a static, self-contained HTML site of the leaderboards, figures and runs."""
import time


def register(commands):
    report = commands.add_parser(
        "report", help="write a static HTML report: leaderboards, figures and one page per run",
        description="Write a self-contained site (plain HTML, CSS, a few lines of JavaScript, embedded figures; "
                    "no network) from the run records: <out>/index.html, one page per dataset, one per run. "
                    "The same records give the same bytes.")
    report.add_argument("--dataset", action="append", metavar="D",
                        help="only this dataset (repeatable; default: every dataset with records)")
    report.add_argument("--results", default="results", help="results folder (default: results)")
    report.add_argument("--out", help="folder of the site (default: <results>/report)")
    reported = report.add_mutually_exclusive_group()
    reported.add_argument("--reported", metavar="PATH",
                          help="published numbers for the Reported column (default: benchmarks/reported.yaml)")
    reported.add_argument("--no-reported", action="store_true", help="leave the Reported column out")
    report.add_argument("--shot-rule", choices=("standard", "oltr"), help="shot groups (default: as recorded)")
    report.add_argument("--bootstrap", type=int, default=10_000, metavar="N",
                        help="bootstrap resamples of the 95%% intervals (default: 10000, as compare)")
    report.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    report.set_defaults(handler=command)


def command(args) -> int:
    from pathlib import Path

    from ltbench.app.cli.table import reported_entries
    from ltbench.core.errors import UserError
    from ltbench.records import report, results, tables
    from ltbench.records.output import check_positive, writable_folder
    from ltbench.records.selection import select_rows

    started = time.perf_counter()
    check_positive("--bootstrap", args.bootstrap)
    loaded = results.load_records(args.results)
    datasets = list(dict.fromkeys(args.dataset)) if args.dataset else tables.datasets_in([r for _, r in loaded])
    if not datasets:
        raise UserError(f"no run records under {Path(args.results) / 'runs'}; run `ltbench run ...` first "
                        "or pass --results DIR")
    rows = {dataset: select_rows(loaded, dataset, (), args.results, args.shot_rule) for dataset in datasets}
    reported = reported_entries(args)
    out = writable_folder(args.out if args.out else Path(args.results) / "report", "--out")
    written = report.write_report(rows, out, args.results, reported, resamples=args.bootstrap,
                                  seed=args.bootstrap_seed, shot_rule=args.shot_rule)
    print(f"{out / 'index.html'} ({len(written)} pages, {time.perf_counter() - started:.1f}s)")
    return 0
