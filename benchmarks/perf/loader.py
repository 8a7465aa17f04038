"""Images/s of ltbench's file loader against a plain torchvision ImageFolder + DataLoader.

    python benchmarks/perf/loader.py --images 2000 --workers 0,2

Writes a synthetic ImageFolder of JPEGs (half 500 x 375, half 256 x 256, smooth random
content, quality 90) to a temporary folder, then decodes it once per path and worker count
with the same eval transform (224 px CLIP preprocessing): ltbench's ``image_loader`` on a
FileSplit, with and without ``jpeg_draft``, and ``torchvision.datasets.ImageFolder`` (which
converts each image to RGB before the transform, so no draft mode there). Best of --repeats,
the paths taking turns.
"""
import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from ltbench.data.base import FileSplit
from ltbench.data.loading import image_loader
from ltbench.data.transforms import TransformSpec

SIZES = ((500, 375), (256, 256))
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def write_folder(root: Path, count: int, classes: int = 10):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, labels = [], []
    for index in range(count):
        label, size = index % classes, SIZES[index % len(SIZES)]
        relative = f"class_{label:03d}/{index:06d}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize(size, Image.BILINEAR).save(root / relative, quality=90)
        paths.append(relative)
        labels.append(label)
    list_file = root / "list.txt"
    list_file.write_text("".join(f"{p} {label}\n" for p, label in zip(paths, labels)))
    return FileSplit(name="bench", root=root, paths=paths, labels=np.asarray(labels), list_file=list_file,
                     list_sha256="synthetic")


def images_per_second(loader, count: int) -> float:
    started = time.perf_counter()
    seen = sum(len(labels) for _, labels in loader)
    assert seen == count, (seen, count)
    return count / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    from torchvision.datasets import ImageFolder

    torch.set_num_threads(1)
    spec = TransformSpec(size=args.size, mean=CLIP_MEAN, std=CLIP_STD)
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as folder:
        split = write_folder(Path(folder), args.images)
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            paths = {
                "ltbench": lambda: image_loader(split, spec, args.batch_size, num_workers=workers),
                "ltbench jpeg_draft": lambda: image_loader(split, dataclasses.replace(spec, jpeg_draft=True),
                                                           args.batch_size, num_workers=workers),
                "torchvision ImageFolder": lambda: torch.utils.data.DataLoader(
                    ImageFolder(folder, transform=spec.pil_transform()), batch_size=args.batch_size,
                    num_workers=workers),
            }
            best = dict.fromkeys(paths, 0.0)
            for _ in range(args.repeats):
                for name, make in paths.items():
                    best[name] = max(best[name], images_per_second(make(), args.images))
            for name, value in best.items():
                results[f"{name} ({workers} workers)"] = value
                rows.append([name, workers, f"{value:.0f}", f"{value / best['torchvision ImageFolder']:.2f}"])
    print(f"ltbench loader perf: {args.images} JPEGs ({' and '.join(f'{w}x{h}' for w, h in SIZES)}), "
          f"{args.size} px, batch {args.batch_size}, best of {args.repeats}")
    print(tabulate(rows, headers=["loader", "workers", "images/s", "vs ImageFolder"], tablefmt="github"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
