"""Training loaders on the CPU (issue 22, finding 12): what one loader for all epochs saves, and
what the in-memory augmentation costs the main thread that a GPU run now moves to the device.

    python benchmarks/perf/training_loaders.py --images 256 --workers 2 --epochs 4

- file split (synthetic 64 x 48 PNGs, 32 px augmentation, --workers workers): --epochs epochs
  through a new DataLoader every epoch (the old path: ``augmented_loader`` per epoch) against
  ``epoch_batches``' one loader with persistent workers; seconds to the first batch of each
  epoch after the first, and the whole run (the best total of --repeats runs, the paths
  taking turns). The batches are checked equal.
- in-memory split (CIFAR-sized 32 x 32 uint8 images, --size px crops, --batch-size): seconds a
  batch of ``AugmentSpec.apply_batch`` takes on the CPU, the main-thread work of every step
  before this change; on a GPU run it now runs on the device (uint8 pixels copied, draws made
  on the host), and the host keeps only the draws (timed too).
Prints the load average before and after: time only on a quiet machine.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from ltbench.data.augment import AugmentSpec, _crop_boxes, _jitter_draws
from ltbench.data.base import FileSplit
from ltbench.data.loading import augmented_loader, epoch_batches
from ltbench.data.samplers import build_sampler
from ltbench.data.transforms import TransformSpec

MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
AUGMENT = {"crop_scale": [0.5, 1.0], "crop_ratio": [0.75, 1.3333], "flip": True, "color_jitter": [0.4, 0.4, 0.4, 0.0]}


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def file_split(root: Path, count: int) -> FileSplit:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, labels = [], np.arange(count) % 10
    for index in range(count):
        path = f"img/{index}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / path)
        paths.append(path)
    return FileSplit(name="train", root=root, paths=paths, labels=labels, list_file=root / "train.txt",
                     list_sha256="synthetic")


def run_epochs(batches_of, epochs: int):
    """(seconds to each epoch's first batch, whole seconds, every epoch's images)."""
    first, images, started = [], [], time.perf_counter()
    for epoch in range(epochs):
        begin = time.perf_counter()
        batches = iter(batches_of(epoch))
        batch, _ = next(batches)
        first.append(time.perf_counter() - begin)
        images.append(torch.cat([batch] + [more for more, _ in batches]))
    return first, time.perf_counter() - started, images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=224, help="crop size of the in-memory augmentation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = load_average()
    eval_spec = TransformSpec(size=32, mean=MEAN, std=STD)
    spec = AugmentSpec.from_eval(eval_spec, AUGMENT)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        split = file_split(Path(folder), args.images)
        labels = split.labels

        def fresh(epoch):
            return augmented_loader(split, spec, 32, build_sampler("instance", labels, seed=0), seed=0, epoch=epoch,
                                    num_workers=args.workers)

        timings = {"old": [], "new": []}
        for _ in range(args.repeats):  # the paths take turns; the best run of each counts
            kept = epoch_batches(split, eval_spec, {"enabled": True, **AUGMENT}, 32,
                                 build_sampler("instance", labels, seed=0), seed=0, num_workers=args.workers)
            old_first, old_total, old_images = run_epochs(fresh, args.epochs)
            new_first, new_total, new_images = run_epochs(kept, args.epochs)
            assert all(torch.equal(a, b) for a, b in zip(old_images, new_images))
            del kept
            timings["old"].append((old_total, float(np.median(old_first[1:]))))
            timings["new"].append((new_total, float(np.median(new_first[1:]))))
        (old_total, old_first), (new_total, new_first) = min(timings["old"]), min(timings["new"])
        results["file_epochs"] = {"old_first_batch_s": old_first, "new_first_batch_s": new_first,
                                  "old_total_s": old_total, "new_total_s": new_total}
    memory = AugmentSpec(size=args.size, mean=MEAN, std=STD, color_jitter=(0.4, 0.4, 0.4, 0.0))
    images = np.random.default_rng(0).integers(0, 256, (args.batch_size, 32, 32, 3), dtype=np.uint8)
    best, draws = float("inf"), float("inf")
    for repeat in range(args.repeats):
        started = time.perf_counter()
        memory.apply_batch(images, torch.Generator().manual_seed(repeat))
        best = min(best, time.perf_counter() - started)
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(repeat)
        rows = torch.arange(args.batch_size)
        _crop_boxes(args.batch_size, 32, 32, memory.crop_scale, memory.crop_ratio, generator)
        torch.rand(args.batch_size, generator=generator)
        _jitter_draws(memory.color_jitter, generator, args.batch_size, rows)
        draws = min(draws, time.perf_counter() - started)
    results["in_memory_batch"] = {"cpu_augmentation_s": best, "host_draws_s": draws}
    file_result, memory_result = results["file_epochs"], results["in_memory_batch"]
    print(f"training loaders, {args.threads} thread(s); load average {before} before, {load_average()} after")
    print(tabulate([
        [f"file split, {args.workers} workers: first batch of an epoch (median of epochs 2..{args.epochs})",
         f"{file_result['old_first_batch_s'] * 1e3:.0f} ms", f"{file_result['new_first_batch_s'] * 1e3:.0f} ms"],
        [f"file split, {args.workers} workers: {args.epochs} epochs of {args.images} images",
         f"{file_result['old_total_s']:.2f} s", f"{file_result['new_total_s']:.2f} s"],
        [f"in-memory batch of {args.batch_size} 32 px -> {args.size} px: main-thread work a step",
         f"{memory_result['cpu_augmentation_s'] * 1e3:.0f} ms (augmentation on the CPU)",
         f"{memory_result['host_draws_s'] * 1e3:.1f} ms (the draws; the rest on the GPU)"],
    ], headers=["measurement", "old", "new"], tablefmt="github"))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "load_before": before,
                                               "load_after": load_average(), "results": results}, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
