"""`ltbench table`: leaderboards rebuilt from the run records."""
import sys
from pathlib import Path

from ltbench.core.errors import UserError


def register(commands):
    table = commands.add_parser("table", help="aggregate run records into leaderboard tables")
    table.add_argument("--dataset", help="only this dataset (default: every dataset with records)")
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    table.add_argument("--results", default="results", help="results folder (default: results)")
    table.add_argument("--shot-rule", choices=("standard", "oltr"),
                       help="regroup many/medium/few under this rule (default: as recorded)")
    reported = table.add_mutually_exclusive_group()
    reported.add_argument("--reported", metavar="PATH",
                          help="published numbers for the Reported column (default: benchmarks/reported.yaml; "
                               "the column stays empty if that file is not there)")
    reported.add_argument("--no-reported", action="store_true", help="leave the Reported column out")
    table.add_argument("--ci", action="store_true",
                       help="add a 95%% within-class bootstrap interval to Overall of single-seed rows")
    table.add_argument("--bootstrap", type=int, default=10_000, metavar="N", help="resamples for --ci (default: 10000)")
    table.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the --ci bootstrap (default: 0)")
    table.add_argument("--test-dist", metavar="NAME",
                       help="add test-agnostic accuracy columns: forward-50|25|10|5|2, uniform, "
                            "backward-2|5|10|25|50, or all")
    table.add_argument("--calibration", action="store_true", help="add ECE, MCE, NLL and Brier columns")
    table.add_argument("--cost", action="store_true",
                       help="add trained parameters, device-hours (from scratch) and peak device / host memory columns")
    table.set_defaults(handler=command)


def reported_entries(args):
    """Published numbers for the table's Reported column; None: no column (--no-reported)."""
    from ltbench.records.reported import default_reported_path, load_reported

    if args.no_reported:
        return None
    if args.reported is not None:
        return load_reported(args.reported)  # a path given that is not there is an error
    path = default_reported_path()
    return load_reported(path) if path.exists() else []


def command(args) -> int:
    from ltbench.records import results, tables

    loaded = results.load_records(args.results)
    records = [record for _, record in loaded]
    record_paths = {id(record): path for path, record in loaded}
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap {args.bootstrap}: give at least 1 resample")
    datasets = [args.dataset] if args.dataset else tables.datasets_in(records)
    if not datasets:
        raise UserError(f"no run records under {Path(args.results) / 'runs'}; run `ltbench run ...` first "
                        "or pass --results DIR")
    reported = reported_entries(args)  # before any table is written: a bad file fails first
    missing = {}
    for dataset in datasets:
        rows = tables.leaderboard_rows(records, dataset, shot_rule=args.shot_rule)
        if not rows:
            known = ", ".join(tables.datasets_in(records)) or "none"
            raise UserError(f"no run records for dataset '{dataset}' under {args.results} (datasets with records: {known})")
        if reported is not None:
            tables.join_reported(rows, reported, dataset)
        lacking = []
        if args.ci:
            lacking += tables.add_overall_ci(rows, record_paths, args.bootstrap, args.bootstrap_seed)
        if args.test_dist:
            lacking += tables.add_test_dist(rows, args.test_dist)
        if args.calibration:
            lacking += tables.add_calibration(rows)
        if args.cost:
            lacking += tables.add_cost(rows)
        for field in lacking:
            missing.setdefault(field, []).append(dataset)
        text = tables.render_table(rows, args.format)
        path = tables.write_table(args.results, dataset, text, args.format)
        print(f"## {dataset}\n\n{text}\n(written to {path})\n")
    if missing:  # one warning for all records from before these fields
        print(f"warning: some records predate {', '.join(sorted(missing))} (written by an older ltbench); "
              "their cells are '-'", file=sys.stderr)
    return 0
