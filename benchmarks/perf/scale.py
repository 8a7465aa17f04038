"""A rehearsal at the datasets' real sizes: synthetic images laid out as Places-LT, ImageNet-LT and
iNaturalist 2018's split files say, and one method of every family run on them with ``tiny``.

    python benchmarks/perf/scale.py --shape places|imagenet|inat [--scale 0.1] --work DIR

Shapes (class counts and split sizes of the real datasets; ``--splits`` holds the real files):

- places: Places-LT's own split files (62,500 / 7,300 / 36,500 images, 365 classes);
- imagenet: ImageNet-LT's real val and test files (20,000 / 50,000 images, 1000 classes) and a
  train split of 115,846 images drawn for this script: a Pareto-shaped profile from 1280 down to
  5 images a class (below), the counts given to the classes in a seeded random order;
- inat: iNaturalist 2018's real val file (24,426 images, which is also the test split) and
  categories.json, and a train split of 437,513 images from 1000 down to 2 a class, as above.

``--scale S`` keeps max(1, round(n * S)) images of each class of each split (every class stays).
Each image is a small JPEG (``--image-size``, default 32 px: tiny's input size) of its class's
colour with a little noise, written once under ``--work DIR`` and reused by later calls (a
``ready.json`` says what is there); results and the feature cache are made afresh each call.

Stages, each in its own process (forked from this one after the imports, so no stage pays for
importing torch) in this order:

- zeroshot: ``zeroshot_clip`` (the 80-template text classifier, the test and val features);
- linear_probe: ``linear_probe`` with 1 epoch (cold cache: extracts train, val and test features);
- linear_probe_warm: the same with seed 1 (every feature from the cache);
- decoder: ``decoder_bs`` with ``stage1.iterations`` (default 20 steps of 256 images), the
  imagenet_code preprocessing at tiny's 32 px (``preprocess.crop=32 preprocess.resize=36``:
  the YAML pins the code's 224 / 256 for the real backbones);
- lift: ``lift`` for 1 epoch;
- prompt_tuning: ``prompt_tuning`` for ``--prompt-steps`` steps of 32 images: trained on a train
  split file of that many images (the first images of the train file's classes, round robin),
  evaluated on the full val and test splits; its record goes to a results folder of its own
  (another train split: not a row beside the others);
- posthoc: ``posthoc_la`` of the linear probe's saved logits; ensemble: ``clip_ensemble`` of the
  zero-shot and linear-probe runs' saved logits (weights chosen on val);
- compare, table, plot (``plot all``), report.

Every stage runs with ``--threads`` torch threads (default 1) and ``--workers`` loader workers
(default 2); open_clip, torch and ltbench are imported before the stages fork, so their import
time (5-10 s a process on a loaded 2-core machine) is in no stage's time.

Per stage it prints the wall time, the peak memory (the largest resident set of the stage's
processes, from wait4; and the peak proportional set size of its process tree, sampled every
0.25 s, which counts memory shared with loader workers once), the disk written (feature cache,
records with their per-sample files, saved logits, checkpoints and work files, figures and
pages) and images a second (the images the stage reads from disk or the cache, / wall time),
with the 1-minute load average when the stage started. ``--json OUT`` writes the numbers.

``--growth A.json B.json ...`` prints, from earlier ``--json`` outputs, each stage's numbers per
shape and how they grow from the first to the last (the cost-growth table of docs/performance.md).

Pareto-shaped train profile: class at rank r (0 = most images) gets n(r) = max (1 + r / s)^-a,
a such that n(C - 1) = min, s found by bisection so that the counts add up to the total
(largest-remainder rounding); s -> infinity would be the exponential profile of CIFAR-LT.
"""
import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPLITS = REPO.parent / "shared" / "data" / "splits"
PROFILES = {"imagenet": (1000, 115_846, 1280, 5), "inat": (8142, 437_513, 1000, 2)}  # C, total, max, min
VARIANTS = 4  # distinct JPEGs per class
STAGES = ("zeroshot", "linear_probe", "linear_probe_warm", "decoder", "lift", "prompt_tuning", "posthoc",
          "ensemble", "compare", "table", "plot", "report")
DISK = ("cache", "records", "logits", "work", "figures")


# ---- the synthetic dataset ------------------------------------------------------------------

def pareto_profile(classes: int, total: int, largest: int, smallest: int) -> np.ndarray:
    """[classes] int counts, non-increasing, from `largest` to `smallest`, adding up to `total`."""
    if not classes * smallest <= total <= classes * largest:
        raise ValueError(f"{total} images cannot be {classes} classes of {smallest}..{largest}")
    ranks = np.arange(classes, dtype=np.float64)

    def curve(log_s):
        s = math.exp(log_s)
        a = math.log(largest / smallest) / math.log1p((classes - 1) / s)
        return largest * (1.0 + ranks / s) ** -a

    low, high = -20.0, 20.0  # the total rises with s
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if curve(middle).sum() < total else (low, middle)
    values = curve((low + high) / 2)
    counts = np.floor(values).astype(np.int64)
    counts[0], counts[-1] = largest, smallest
    missing = total - counts.sum()
    order = np.argsort(-(values - np.floor(values))[1:-1], kind="stable") + 1  # largest remainders first
    counts[order[:missing]] += 1 if missing > 0 else 0
    if missing < 0:
        counts[order[::-1][:-missing]] -= 1
    return counts


def _read_split(path: Path):
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(fields[0], int(fields[1])) for fields in lines]


def _scaled(lines, scale: float):
    """max(1, round(n * scale)) of each class's lines, the first ones, in file order."""
    if scale >= 1:
        return lines
    by_class = {}
    for path, label in lines:
        by_class.setdefault(label, []).append(path)
    keep = {label: max(1, round(len(paths) * scale)) for label, paths in by_class.items()}
    kept, taken = [], {}
    for path, label in lines:
        if taken.get(label, 0) < keep[label]:
            kept.append((path, label))
            taken[label] = taken.get(label, 0) + 1
    return kept


def _generated_train(shape: str, names, scale: float, seed: int = 0):
    """Train lines of the Pareto profile, counts given to classes in a seeded order."""
    classes, total, largest, smallest = PROFILES[shape]
    counts = pareto_profile(classes, total, largest, smallest)
    by_class = np.empty(classes, dtype=np.int64)
    by_class[np.random.default_rng(seed).permutation(classes)] = counts
    if scale < 1:
        by_class = np.maximum(1, np.round(by_class * scale)).astype(np.int64)
    lines = []
    for label, count in enumerate(by_class):
        for index in range(int(count)):
            if shape == "imagenet":
                lines.append((f"train/{names[label]}/synthetic_{index:05d}.JPEG", label))
            else:
                lines.append((f"train_val2018/synthetic/{label}/{index:05d}.jpg", label))
    return lines


def layout(shape: str, splits_dir: Path, scale: float):
    """(dataset name, {split file name: lines}, {extra file name: text}) of a shape."""
    if shape == "places":
        source = splits_dir / "Places_LT"
        files = {name: _scaled(_read_split(source / name), scale)
                 for name in ("Places_LT_train.txt", "Places_LT_val.txt", "Places_LT_test.txt")}
        return "places_lt", files, {"classnames.txt": (source / "classnames.txt").read_text()}
    if shape == "imagenet":
        source = splits_dir / "ImageNet_LT"
        wnids = [line.split()[0] for line in (source / "classnames.txt").read_text().splitlines() if line.strip()]
        files = {"ImageNet_LT_train.txt": _generated_train(shape, wnids, scale)}
        files.update({name: _scaled(_read_split(source / name), scale)
                      for name in ("ImageNet_LT_val.txt", "ImageNet_LT_test.txt")})
        return "imagenet_lt", files, {"classnames.txt": (source / "classnames.txt").read_text()}
    if shape == "inat":
        source = splits_dir / "iNaturalist18"
        files = {"iNaturalist18_train.txt": _generated_train(shape, None, scale),
                 "iNaturalist18_val.txt": _scaled(_read_split(source / "iNaturalist18_val.txt"), scale)}
        return "inat2018", files, {"categories.json": (source / "categories.json").read_text()}
    raise SystemExit(f"unknown --shape {shape!r}: places, imagenet or inat")


def class_jpegs(num_classes: int, size: int, seed: int = 0):
    """[class][variant] JPEG bytes: the class's colour, a little noise per variant."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, size=(num_classes, 1, 1, 3))
    noise = rng.integers(-20, 21, size=(VARIANTS, size, size, 3))
    encoded = []
    for colour in colours:
        pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
        row = []
        for variant in pixels:
            buffer = io.BytesIO()
            Image.fromarray(variant).save(buffer, format="JPEG", quality=85)
            row.append(buffer.getvalue())
        encoded.append(row)
    return encoded


def build_dataset(shape: str, scale: float, work: Path, splits_dir: Path, image_size: int, log) -> dict:
    """Write (or reuse) the shape's split files and images under work; returns its description."""
    root = work / f"{shape}-{scale:g}"
    ready = root / "ready.json"
    if ready.is_file():
        described = json.loads(ready.read_text())
        if described.get("image_size") == image_size:
            log(f"reusing {root} ({described['images']} images)")
            return described
    dataset, files, extras = layout(shape, splits_dir, scale)
    started = time.perf_counter()
    split_dir, image_dir = root / "splits", root / "images"
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, text in extras.items():
        (split_dir / name).write_text(text)
    for name, lines in files.items():
        (split_dir / name).write_text("".join(f"{path} {label}\n" for path, label in lines))
    num_classes = 1 + max(label for lines in files.values() for _, label in lines)
    jpegs = class_jpegs(num_classes, image_size)
    written, folders = 0, set()
    for lines in files.values():
        for index, (path, label) in enumerate(lines):
            target = image_dir / path
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            if not target.exists():
                target.write_bytes(jpegs[label][index % VARIANTS])
                written += 1
    # The prompt-tuning stage's train file: a few steps' images, taken from the classes in turn.
    described = {"shape": shape, "scale": scale, "dataset": dataset, "image_size": image_size,
                 "split_dir": str(split_dir), "image_dir": str(image_dir), "classes": num_classes,
                 "splits": {name: len(lines) for name, lines in files.items()}, "images": written,
                 "seconds": round(time.perf_counter() - started, 1),
                 "bytes": sum(file.stat().st_size for file in image_dir.rglob("*") if file.is_file())}
    ready.write_text(json.dumps(described, indent=2))
    log(f"wrote {written} images under {image_dir} in {described['seconds']} s")
    return described


def split_sizes(described: dict) -> dict:
    """train / val / test image counts, and 'evaluated': test plus val where val is its own split."""
    sizes = {}
    for name, count in described["splits"].items():
        stem = name.rsplit("_", 1)[-1].removesuffix(".txt")
        sizes[stem] = count
    if described["dataset"] == "inat2018":  # the val file is the test split
        sizes["test"] = sizes["val"]
        sizes["evaluated"] = sizes["val"]
    else:
        sizes["evaluated"] = sizes["val"] + sizes["test"]
    return sizes


def prompt_tuning_splits(described: dict, steps: int, batch: int = 32) -> Path:
    """A split folder beside the shape's, whose train file holds `steps` batches of images (the
    classes in turn, each's first images first); val, test and class names are the shape's."""
    source = Path(described["split_dir"])
    target = source.parent / f"splits_prompt_tuning_{steps}"
    target.mkdir(exist_ok=True)
    for file in source.iterdir():
        if "_train" not in file.name:
            shutil.copyfile(file, target / file.name)
    train = next(file for file in source.iterdir() if "_train" in file.name)
    by_class = {}
    for path, label in _read_split(train):
        by_class.setdefault(label, []).append(path)
    chosen, round_index = [], 0
    while len(chosen) < steps * batch and any(round_index < len(paths) for paths in by_class.values()):
        for label in sorted(by_class):
            if round_index < len(by_class[label]) and len(chosen) < steps * batch:
                chosen.append((by_class[label][round_index], label))
        round_index += 1
    (target / train.name).write_text("".join(f"{path} {label}\n" for path, label in chosen))
    return target


# ---- running and measuring stages -----------------------------------------------------------

def folder_bytes(folder: Path, suffix: str = None, exclude: str = None) -> int:
    if not folder.exists():
        return 0
    total = 0
    for file in folder.rglob("*"):
        if file.is_file() and (suffix is None or file.name.endswith(suffix)) and \
                (exclude is None or not file.name.endswith(exclude)):
            total += file.stat().st_size
    return total


def disk_usage(paths: dict) -> dict:
    results = [paths["results"], paths["prompt_results"]]
    return {"cache": folder_bytes(paths["cache"]),
            "records": sum(folder_bytes(folder / "runs", exclude=".logits.npz") for folder in results),
            "logits": sum(folder_bytes(folder / "runs", suffix=".logits.npz") for folder in results),
            "work": sum(folder_bytes(folder / "work") for folder in results),
            "figures": folder_bytes(paths["figures"]) + folder_bytes(paths["site"])}


def _tree(pid: int):
    """pid and its descendants (Linux /proc children lists)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return found


def _pss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class PssSampler(threading.Thread):
    """The peak summed PSS of a process tree, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, _pss_bytes(_tree(self.pid)))
            self.done.wait(self.interval)


def run_stage(args, log_file: Path, threads=None) -> dict:
    """`ltbench ARGS` in a forked child; wall seconds, exit code, peak RSS and PSS."""
    sys.stdout.flush()
    sys.stderr.flush()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: the stage's own process
        code = 1
        try:
            with open(log_file, "w") as log:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                if threads:
                    import torch

                    torch.set_num_threads(threads)
                from ltbench.app.cli import main

                code = main([str(arg) for arg in args])
        except BaseException:  # noqa: BLE001 - whatever it is, the log says it and the exit code shows it
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    sampler = PssSampler(pid)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    return {"seconds": seconds, "code": os.waitstatus_to_exitcode(status), "peak_rss": usage.ru_maxrss * 1024,
            "peak_pss": sampler.peak, "load": load}


def _record_of(stdout_log: Path) -> str:
    for line in reversed(stdout_log.read_text().splitlines()):
        if line.startswith("record: "):
            return line.removeprefix("record: ")
    raise RuntimeError(f"no record line in {stdout_log}")


def stage_commands(described: dict, paths: dict, options) -> list:
    """[(stage, ltbench args, images read)] in order; later stages use earlier records (filled in
    by the caller through paths['records'])."""
    sizes = split_sizes(described)
    dataset = described["dataset"]
    run = ["run", "--dataset", dataset, "--backbone", "tiny", "--data-root", described["image_dir"],
           "--split-dir", described["split_dir"], "--out", paths["results"], "--no-progress"]
    runtime = [f"runtime.cache_dir={paths['cache']}", f"runtime.num_workers={options.workers}"]
    if options.threads > 0:
        runtime.append(f"runtime.cpu_threads={options.threads}")
    evaluated, train = sizes["evaluated"], sizes["train"]
    records = paths["records"]
    decoder_images = options.decoder_steps * 256
    prompt_images = options.prompt_steps * 32
    return [
        ("zeroshot", lambda: run + ["--method", "zeroshot_clip", "--save-logits", "--cfg-options", *runtime],
         evaluated),
        ("linear_probe", lambda: run + ["--method", "linear_probe", "--save-logits", "--cfg-options", *runtime,
                                        "train.epochs=1"], train + evaluated),
        ("linear_probe_warm", lambda: run + ["--method", "linear_probe", "--seed", "1", "--cfg-options", *runtime,
                                             "train.epochs=1"], train + evaluated),
        ("decoder", lambda: run + ["--method", "decoder_bs", "--cfg-options", *runtime, "preprocess.crop=32",
                                   "preprocess.resize=36", f"stage1.iterations={options.decoder_steps}",
                                   "stage1.epochs=1", "stage1.warmup_iterations=0"], decoder_images + evaluated),
        ("lift", lambda: run + ["--method", "lift", "--cfg-options", *runtime, "train.epochs=1"], train + evaluated),
        # Its own results folder: trained on another train split file, it is not a row of the others' tables.
        ("prompt_tuning", lambda: [paths["prompt_splits"] if arg == described["split_dir"] else
                                   paths["prompt_results"] if arg == paths["results"] else arg for arg in run]
         + ["--method", "prompt_tuning", "--cfg-options", *runtime, "train.epochs=1"], prompt_images + evaluated),
        ("posthoc", lambda: run + ["--method", "posthoc_la", "--cfg-options", *runtime,
                                   f"source={records['linear_probe']}"], evaluated),
        ("ensemble", lambda: run + ["--method", "clip_ensemble", "--cfg-options", *runtime,
                                    f"members=[{records['linear_probe']},{records['zeroshot']}]"], evaluated),
        ("compare", lambda: ["compare", records["zeroshot"], records["linear_probe"]], sizes["test"]),
        ("table", lambda: ["table", "--dataset", dataset, "--results", paths["results"], "--no-reported"],
         sizes["test"]),
        ("plot", lambda: ["plot", "all", "--dataset", dataset, "--results", paths["results"], "--out",
                          paths["figures"]], sizes["test"]),
        ("report", lambda: ["report", "--dataset", dataset, "--results", paths["results"], "--out", paths["site"],
                            "--no-reported"], sizes["test"]),
    ]


def _size(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def table(rows) -> str:
    from tabulate import tabulate

    headers = ["stage", "wall", "peak RSS", "peak PSS (tree)", *[f"disk: {kind}" for kind in DISK], "images/s",
               "load"]
    body = [[row["stage"], f"{row['seconds']:.1f} s", _size(row["peak_rss"]), _size(row["peak_pss"]),
             *[_size(row["disk"][kind]) for kind in DISK], f"{row['images_per_second']:,.0f}",
             f"{row['load']:.1f}"] for row in rows]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True)


def _disk_total(row) -> int:
    return sum(row["disk"].values())


def growth_tables(results) -> str:
    """Markdown: each stage's wall time, peak RSS and disk written per shape, then how they grow
    from the first shape to the last beside the growth of N (the images the stage reads) and of
    N x C (evaluated images x classes: the size of the logits). results: --json outputs."""
    from tabulate import tabulate

    names = [f"{r['dataset']['dataset']} x {r['dataset']['scale']:g}" for r in results]
    by_stage = [{row["stage"]: row for row in r["rows"]} for r in results]
    stages = [stage for stage in STAGES if all(stage in rows for rows in by_stage)]
    absolute = [[stage] + [f"{rows[stage]['seconds']:.1f} s / {_size(rows[stage]['peak_rss'])} / "
                           f"{_size(_disk_total(rows[stage]))}" for rows in by_stage] for stage in stages]
    first, last = by_stage[0], by_stage[-1]
    logits = [r["sizes"]["evaluated"] * r["dataset"]["classes"] for r in (results[0], results[-1])]
    growth = []
    for stage in stages:
        a, b = first[stage], last[stage]
        growth.append([stage, f"{b['seconds'] / a['seconds']:.1f}x", f"{b['images'] / a['images']:.1f}x",
                       f"{logits[1] / logits[0]:.1f}x", f"{b['peak_rss'] / a['peak_rss']:.2f}x",
                       f"{_size(b['peak_rss'] - a['peak_rss'])}",
                       f"{_disk_total(b) / max(1, _disk_total(a)):.1f}x"])
    return "\n\n".join([
        tabulate(absolute, headers=["stage", *[f"{name}: wall / peak RSS / disk" for name in names]],
                 tablefmt="pipe", disable_numparse=True),
        tabulate(growth, headers=["stage", f"wall {names[0]} -> {names[-1]}", "N (images read)", "N x C (logits)",
                                  "peak RSS", "peak RSS added", "disk"], tablefmt="pipe", disable_numparse=True)])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--growth", nargs="+", type=Path, metavar="JSON",
                        help="print the growth tables of earlier --json outputs (smallest shape first) and stop")
    parser.add_argument("--shape", choices=("places", "imagenet", "inat"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each class's images (default 1)")
    parser.add_argument("--work", type=Path, help="folder for the images (kept), results and cache")
    parser.add_argument("--splits", type=Path, default=DEFAULT_SPLITS,
                        help="folder with Places_LT/, ImageNet_LT/, iNaturalist18/ split files")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--workers", type=int, default=2, help="runtime.num_workers of the runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of every stage (runtime.cpu_threads; default 1: on a shared "
                             "machine torch's threads wait on each other, a decoder step took 5x longer with 2); "
                             "0: torch's default")
    parser.add_argument("--decoder-steps", type=int, default=20)
    parser.add_argument("--prompt-steps", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_args(argv)
    if options.growth:
        print(growth_tables([json.loads(path.read_text()) for path in options.growth]))
        return 0
    if options.shape is None or options.work is None:
        raise SystemExit("give --shape and --work (or --growth JSON ...)")
    unknown = sorted(set(options.stages.split(",")) - set(STAGES))
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(STAGES)}")
    if not options.splits.is_dir():
        raise SystemExit(f"--splits {options.splits}: not a folder (it holds Places_LT/, ImageNet_LT/, iNaturalist18/)")
    log = lambda message: print(f"[scale] {message}", flush=True)  # noqa: E731
    # Imported here, before any stage forks, so that no stage pays for the imports.
    import open_clip  # noqa: F401  (with torchvision: 5-10 s a process here, a fixed cost not measured)
    import torch  # noqa: F401

    import ltbench.app.cli  # noqa: F401
    import ltbench.app.runner  # noqa: F401
    import ltbench.records.report  # noqa: F401

    described = build_dataset(options.shape, options.scale, options.work, options.splits, options.image_size, log)
    root = options.work / f"{options.shape}-{options.scale:g}"
    paths = {"results": root / "results", "prompt_results": root / "results-prompt-tuning", "cache": root / "cache",
             "figures": root / "figures", "site": root / "site", "logs": root / "logs", "records": {}}
    for key in ("results", "prompt_results", "cache", "figures", "site", "logs"):
        shutil.rmtree(paths[key], ignore_errors=True)
    paths["logs"].mkdir(parents=True)
    wanted = options.stages.split(",")
    if "prompt_tuning" in wanted:
        paths["prompt_splits"] = str(prompt_tuning_splits(described, options.prompt_steps))
    log(f"{described['dataset']} x {options.scale:g}: {described['classes']} classes, "
        + ", ".join(f"{name} {count:,}" for name, count in split_sizes(described).items()))
    rows = []
    for stage, command, images in stage_commands(described, paths, options):
        if stage not in wanted:
            continue
        before = disk_usage(paths)
        log_file = paths["logs"] / f"{stage}.log"
        result = run_stage(command(), log_file, options.threads if options.threads > 0 else None)
        if result["code"] != 0:
            tail = "\n".join(log_file.read_text().splitlines()[-15:])
            log(f"stage {stage} failed (exit {result['code']}); the end of {log_file}:\n{tail}")
            return 1
        if stage in ("zeroshot", "linear_probe"):
            paths["records"][stage] = _record_of(log_file)
        after = disk_usage(paths)
        row = {"stage": stage, **result, "images": images, "images_per_second": images / result["seconds"],
               "disk": {kind: after[kind] - before[kind] for kind in DISK}}
        rows.append(row)
        log(f"{stage}: {row['seconds']:.1f} s, peak RSS {_size(row['peak_rss'])}, PSS {_size(row['peak_pss'])}")
    print(table(rows))
    if options.json:
        options.json.write_text(json.dumps({"dataset": described, "sizes": split_sizes(described), "rows": rows,
                                            "cpus": os.cpu_count()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
