"""Main-thread cost of a batch of cached tokens: the old path against RowReader (issue 22, finding 11).

    python benchmarks/perf/token_batches.py --images 2048 --batch-size 256 --repeats 5

Writes a memory-mapped fp16 token array of --images x --tokens x --width (ViT-B/16: 197 x 768;
2048 images = 620 MB) to a temporary folder, reads it once so it sits in the page cache, then
times batches of class-balanced draws (repeated rows, random order) through
- old: rows gathered in sampler order and converted to float32 by numpy (the path before the
  fix; a GPU run then copied the 155 MB fp32 batch from pageable memory, not timed here);
- new, host part of a GPU run: what the main thread does before the asynchronous copy (sorted
  distinct rows into a reused fp16 buffer, ``RowReader._host_rows``); the device then does the
  reorder and the fp32 cast;
- new, whole CPU path: RowReader on the CPU, cast included (a CPU run's batches).
Best of --repeats per path, the paths taking turns; the batches of the paths are checked equal.
Prints the machine's load average before and after: time only on a quiet machine.
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

from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import RowReader


def write_tokens(path: Path, images: int, tokens: int, width: int) -> np.ndarray:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(images, tokens, width))
    rng = np.random.default_rng(0)
    for start in range(0, images, 64):
        stop = min(images, start + 64)
        array[start:stop] = rng.standard_normal((stop - start, tokens, width), dtype=np.float32)
    array.flush()
    del array
    loaded = np.load(path, mmap_mode="r")
    loaded.sum(dtype=np.float32)  # every page once: the timings are of the page cache, not the disk
    return loaded


def old_batch(array, index) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array[index], dtype=np.float32))


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=197)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=4, help="batches per timing (the median counts)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = load_average()
    with tempfile.TemporaryDirectory() as folder:
        array = write_tokens(Path(folder) / "tokens.npy", args.images, args.tokens, args.width)
        labels = np.arange(args.images) % 100
        sampler = build_sampler("class_balanced", labels, seed=0)
        sampler.set_epoch(0)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        batches = [order[i * args.batch_size:(i + 1) * args.batch_size] for i in range(args.batches)]
        reader, host_reader = RowReader(array, "cpu"), RowReader(array, "cpu")
        for index in batches:
            assert torch.equal(reader(index), old_batch(array, index))
        paths = {
            "old: gather in sampler order + numpy float32": lambda index: old_batch(array, index),
            "new, GPU run's host part: sorted fp16 rows into a reused buffer":
                lambda index: host_reader._host_rows(np.unique(index)),
            "new, CPU run: RowReader (fp32 cast on the CPU)": reader,
        }
        best = {name: float("inf") for name in paths}
        for _ in range(args.repeats):
            for name, path in paths.items():
                times = []
                for index in batches:
                    started = time.perf_counter()
                    path(index)
                    times.append(time.perf_counter() - started)
                best[name] = min(best[name], float(np.median(times)))
    old = best["old: gather in sampler order + numpy float32"]
    rows = [[name, f"{seconds * 1e3:.1f} ms", f"{old / seconds:.2f}x"] for name, seconds in best.items()]
    print(f"token batches: {args.batch_size} x {args.tokens} x {args.width} fp16 rows of {args.images} "
          f"(page cache), {args.threads} thread(s); load average {before} before, {load_average()} after")
    print(tabulate(rows, headers=["path", "per batch (best median)", "speed-up vs old"], tablefmt="github"))
    results = dict(best)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "load_before": before,
                                               "load_after": load_average(), "seconds": results}, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
