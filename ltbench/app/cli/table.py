"""`ltbench table`: leaderboards rebuilt from the run records."""
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
    table.set_defaults(handler=command)


def _reported_entries(args):
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

    records = [record for _, record in results.load_records(args.results)]
    datasets = [args.dataset] if args.dataset else tables.datasets_in(records)
    if not datasets:
        raise UserError(f"no run records under {Path(args.results) / 'runs'}; run `ltbench run ...` first "
                        "or pass --results DIR")
    reported = _reported_entries(args)  # before any table is written: a bad file fails first
    for dataset in datasets:
        rows = tables.leaderboard_rows(records, dataset, shot_rule=args.shot_rule)
        if not rows:
            known = ", ".join(tables.datasets_in(records)) or "none"
            raise UserError(f"no run records for dataset '{dataset}' under {args.results} (datasets with records: {known})")
        if reported is not None:
            tables.join_reported(rows, reported, dataset)
        text = tables.render_table(rows, args.format)
        path = tables.write_table(args.results, dataset, text, args.format)
        print(f"## {dataset}\n\n{text}\n(written to {path})\n")
    return 0
