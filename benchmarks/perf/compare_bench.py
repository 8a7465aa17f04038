"""How long `ltbench compare` takes on ImageNet-LT-sized synthetic predictions.

    python benchmarks/perf/compare_bench.py --images 50000 --classes 1000 --bootstrap 10000 --threads 2

Writes two synthetic runs (record + per-sample file; A right on ~60% of images, B on ~62%,
balanced classes) to a temp folder and times, best of --repeats, what `ltbench compare A B` does:
reading and hash-checking both per-sample files, the paired within-class bootstrap, McNemar,
rendering. Thread pools (OpenMP / BLAS / the bootstrap's threads) are pinned to --threads before
numpy is imported, and --cpus pins the process to those cores. The figure depends on what else
the machine runs: the load average before and after is printed with it.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2, help="threads for numpy / BLAS and the bootstrap")
    parser.add_argument("--cpus", help="pin the process to these cores, e.g. 0,1 (default: not pinned)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best and the median are reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


def pin_threads(threads: int, cpus=None) -> None:
    # Only effective before numpy is first imported; a test that imports this module late still runs.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    if cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})


def write_runs(folder: Path, images: int, classes: int, seed: int):
    import numpy as np

    from ltbench.records.per_sample import per_sample_file_for, save_per_sample

    rng = np.random.default_rng(seed)
    labels = np.arange(images) % classes
    counts = np.round(500 * 0.01 ** (np.arange(classes) / max(1, classes - 1))).astype(int)  # an LT profile
    paths = []
    for method, accuracy in (("a", 0.60), ("b", 0.62)):
        correct = rng.random(images) < accuracy
        top_k = rng.integers(0, classes, size=(images, 5)).astype(np.int32)
        top_k[:, 0] = np.where(correct, labels, (labels + 1) % classes)
        top_prob = np.sort(rng.dirichlet(np.ones(6), size=images)[:, :5], axis=1)[:, ::-1].astype(np.float32)
        summary = {"labels": labels.astype(np.int32), "top_k": top_k, "top_prob": top_prob,
                   "true_prob": np.where(correct, top_prob[:, 0], top_prob[:, 4]).astype(np.float32),
                   "sq_sum": (top_prob ** 2).sum(axis=1).astype(np.float32)}
        path = folder / "runs" / "synthetic" / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = save_per_sample(per_sample_file_for(path), {"test": (summary, "synthetic-test")})
        record = {"schema": 1, "run_id": method, "method": method, "dataset": "synthetic", "backbone": "none",
                  "seed": 0, "eval_split": "test", "config_hash": method * 64, "class_counts": counts.tolist(),
                  "shot_counts": counts.tolist(), "created": "2026-01-01T00:00:00.000000+00:00", "per_sample": entry,
                  "metrics": {"overall": 100 * float(correct.mean()), "many": None, "medium": None, "few": None,
                              "shot_rule": "standard", "per_class_accuracy": [None] * classes}}
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


def main(argv=None) -> dict:
    args = parse_args(argv)
    pin_threads(args.threads, args.cpus)
    import numpy as np

    from ltbench.records import compare

    load_before = os.getloadavg()
    seconds = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_runs(Path(folder), args.images, args.classes, args.seed)
        for _ in range(args.repeats):
            started = time.perf_counter()
            sides = [compare.resolve_side(str(path), folder, None) for path in paths]
            result = compare.compare(sides, resamples=args.bootstrap, seed=args.seed, threads=args.threads)
            compare.render(result, "md")
            seconds.append(time.perf_counter() - started)
    load_after = os.getloadavg()
    ci = result["comparisons"][0]["statistics"]["overall"]["ci"]
    numbers = {"images": args.images, "classes": args.classes, "bootstrap": args.bootstrap, "threads": args.threads,
               "cpus": args.cpus, "best_seconds": min(seconds), "median_seconds": float(np.median(seconds)),
               "all_seconds": seconds, "load_average_before": load_before[0], "load_average_after": load_after[0],
               "cpu_count": os.cpu_count(), "overall_difference_ci": ci}
    print(f"ltbench compare: {args.images} images x {args.classes} classes, {args.bootstrap} paired bootstrap "
          f"resamples, {args.threads} thread(s){'' if not args.cpus else f' on cores {args.cpus}'}")
    print(f"best {min(seconds):.2f} s, median {np.median(seconds):.2f} s of {args.repeats} "
          f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, {os.cpu_count()} cores)")
    print(f"overall B - A 95% CI: [{ci[0]:+.2f}, {ci[1]:+.2f}]")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
    return numbers


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
