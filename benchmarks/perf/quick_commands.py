"""How long the commands a user waits for take: `compare`, `plot all` and `report` on the quick
start's digits_lt runs, and one epoch of the class-aware sampler on iNaturalist-sized labels.

    python benchmarks/perf/quick_commands.py --threads 2
    python benchmarks/perf/quick_commands.py --results results --only compare,plot

These were wall-clock limits in the tests (compare under 5 s, plot all under 10 s, a report
under 10 s, the sampler under 1 s), which a loaded machine breaks; here each is timed, best and
median of --repeats, and printed beside that budget. Without --results, the quick start's two runs
(zeroshot_clip and a 5-epoch linear_probe, tiny CLIP) are made first in a temporary folder (not
timed). Figures and pages go to a temporary folder. Thread pools are pinned to --threads before
numpy is imported; the load average before and after is printed with the figures.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# name -> (what is timed, the former test's limit in seconds)
SECTIONS = {
    "sampler": ("one epoch of the class-aware sampler", 1.0),
    "compare": ("ltbench compare zeroshot_clip linear_probe", 5.0),
    "plot": ("ltbench plot all --format png svg", 10.0),
    "report": ("ltbench report", 10.0),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", help="a results folder with digits_lt runs of zeroshot_clip and linear_probe "
                                          "(default: made in a temporary folder)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="compare's resamples (its default: 10000)")
    parser.add_argument("--sampler-labels", type=int, default=115_142,
                        help="labels for the sampler (iNaturalist 2018's train split: 437,513; the former test: "
                             "115,142 = every class once + 107,000 Zipf draws)")
    parser.add_argument("--sampler-classes", type=int, default=8142)
    parser.add_argument("--threads", type=int, default=2, help="threads for numpy / BLAS / torch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best and the median are reported")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


def pin_threads(threads: int) -> None:
    # Only effective before numpy is first imported; a test that imports this module late still runs.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def cli(*args) -> None:
    """`ltbench ARGS` in this process, its output swallowed; a failure stops the benchmark."""
    from ltbench.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    if code != 0:
        raise SystemExit(f"ltbench {' '.join(map(str, args))} failed ({code}):\n{err.getvalue()}")


def quick_start_runs(folder: Path) -> Path:
    results = folder / "results"
    cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", results, "--no-progress")
    cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", results, "--no-progress",
        "--cfg-options", "train.epochs=5")
    return results


def sampler_epoch(labels_count: int, classes: int):
    """A callable drawing one epoch of class-aware indices over Zipf-distributed labels (every
    class at least once), as the former test did."""
    import numpy as np

    from ltbench.data.samplers import build_sampler

    extra = max(0, labels_count - classes)
    labels = np.concatenate([np.arange(classes), np.random.default_rng(0).zipf(1.3, extra) % classes])
    sampler = build_sampler("class_aware", labels, seed=0)
    return lambda: np.fromiter(iter(sampler), dtype=np.int64)


def timed(work, repeats: int):
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv=None) -> dict:
    args = parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    pin_threads(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    numbers = {"threads": args.threads, "repeats": args.repeats, "cpu_count": os.cpu_count(), "sections": {}}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        needs_runs = any(name in only for name in ("compare", "plot", "report"))
        results = Path(args.results) if args.results else quick_start_runs(folder) if needs_runs else None
        work = {
            "sampler": lambda: sampler_epoch(args.sampler_labels, args.sampler_classes),
            "compare": lambda: lambda: cli("compare", "zeroshot_clip", "linear_probe", "--dataset", "digits_lt",
                                           "--results", results, "--bootstrap", args.bootstrap),
            "plot": lambda: lambda: cli("plot", "all", "--dataset", "digits_lt", "--results", results,
                                        "--out", folder / "plots", "--format", "png", "svg"),
            "report": lambda: lambda: cli("report", "--results", results, "--out", folder / "report"),
        }
        for name in only:
            seconds = timed(work[name](), args.repeats)
            what, budget = SECTIONS[name]
            best, median = min(seconds), float(np.median(seconds))
            numbers["sections"][name] = {"what": what, "best_seconds": best, "median_seconds": median,
                                         "all_seconds": seconds, "budget_seconds": budget}
            print(f"{name:8s} best {best:6.2f} s, median {median:6.2f} s of {args.repeats}  "
                  f"({best / budget:.2f} of the former {budget:g} s limit)  {what}")
    load_after = os.getloadavg()
    numbers.update(load_average_before=load_before[0], load_average_after=load_after[0])
    print(f"{args.threads} thread(s); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
          f"{os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
    return numbers


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
