"""`ltbench plot`: the long-tail figures of one dataset's runs, as PNG or SVG files."""
import sys
import time

# As ltbench.records.plots.KINDS / FORMATS, spelled out so that building the parser does not import
# matplotlib and scipy for every other subcommand (a test holds the two equal).
KINDS = ("per-class", "groups", "calibration", "test-dist", "cost")
FORMATS = ("png", "svg")


def register(commands):
    plot = commands.add_parser(
        "plot", help="figures: per-class accuracy vs training images, shot-group bars, reliability, test distributions, "
                     "accuracy vs cost",
        description="Draw figures of the runs of one dataset into <out>/<dataset>/<kind>.<format>. Each ROW is a "
                    "leaderboard row selector method[:backbone][@config-hash] (default: every row of the dataset).")
    plot.add_argument("kind", choices=(*KINDS, "all"), help="which figure ('all': every kind)")
    plot.add_argument("rows", nargs="*", metavar="ROW")
    plot.add_argument("--dataset", required=True, help="dataset whose runs to draw")
    plot.add_argument("--results", default="results", help="results folder (default: results)")
    plot.add_argument("--out", help="folder of the figures (default: <results>/plots)")
    plot.add_argument("--format", choices=FORMATS, nargs="+", default=["png"], help="png and/or svg (default: png)")
    plot.add_argument("--shot-rule", choices=("standard", "oltr"), help="shot groups (default: as recorded)")
    plot.add_argument("--window", type=int, metavar="K",
                      help="per-class: moving average over K classes (default: a twentieth of the classes, at least 3)")
    plot.add_argument("--bins", type=int, default=15, metavar="N", help="calibration: confidence bins (default: 15)")
    plot.add_argument("--bootstrap", type=int, default=10_000, metavar="N",
                      help="groups: bootstrap resamples of the 95%% intervals (default: 10000, as compare)")
    plot.add_argument("--bootstrap-seed", type=int, default=0, help="groups: seed of the bootstrap (default: 0)")
    plot.set_defaults(handler=command, intermixed="rows")  # ROWs may also follow the options


def command(args) -> int:
    from pathlib import Path

    from ltbench.core.errors import UserError
    from ltbench.records import plots, results
    from ltbench.records.output import check_positive, writable_folder
    from ltbench.records.selection import select_rows

    started = time.perf_counter()
    check_positive("--bootstrap", args.bootstrap)
    check_positive("--bins", args.bins)
    if args.window is not None:
        check_positive("--window", args.window)
    rows = select_rows(results.load_records(args.results), args.dataset, args.rows, args.results, args.shot_rule)
    out = writable_folder(args.out if args.out else Path(args.results) / "plots", "--out")
    rule = args.shot_rule or rows[0]["records"][0]["metrics"]["shot_rule"]
    kinds = plots.KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        # A fresh figure per format: a figure saved twice is laid out twice, and the second layout
        # can differ, so one file's bytes would depend on which other formats were asked for.
        for fmt in dict.fromkeys(args.format):
            try:
                figure = plots.draw(kind, rows, args.dataset, rule, window=args.window, resamples=args.bootstrap,
                                    seed=args.bootstrap_seed, bins=args.bins)
            except UserError as error:
                if kind != "cost" or args.kind == "cost":
                    raise
                # `plot all` of records from before costs were kept: every other figure still drawn.
                print(f"warning: no cost figure: {error}", file=sys.stderr)
                break
            print(plots.write_figure(figure, plots.plot_path(out, args.dataset, kind, fmt), fmt))
    print(f"({len(rows)} row{'' if len(rows) == 1 else 's'}, {time.perf_counter() - started:.1f}s)")
    return 0
