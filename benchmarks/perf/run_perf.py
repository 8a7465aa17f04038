"""How fast ltbench's frozen-encoder paths are, on a synthetic in-memory dataset.

    python benchmarks/perf/run_perf.py --backbone tiny --images 2000 --classes 100 --batch-size 64 --device cpu

Measures, with one table on stdout (and --json OUT for the numbers):
- feature extraction through ltbench (``image_features``, cold cache) against the loop a user
  would write by hand: the same open_clip model, torchvision preprocessing of the same resolution
  per PIL image, a torch DataLoader (best of --repeats runs each, taking turns);
- a second ``image_features`` call on the same split (a cache hit: no encoding);
- a linear-probe epoch on cached features against an epoch that encodes every batch first;
- building the 80-template zero-shot classifier for several class counts (synthetic names);
- peak memory: CUDA max_memory_allocated per measurement on a GPU, the process's peak RSS on CPU.

The images are random uint8 pixels and the weights random or pretrained: only the speed means
something here.
"""
import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tabulate import tabulate

from ltbench.data.base import ArraySplit
from ltbench.data.loading import epoch_batches
from ltbench.data.prompts import templates_by_name
from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import TensorBatches
from ltbench.engine.cache import ArrayCache, format_bytes
from ltbench.engine.context import RunContext
from ltbench.engine.features import image_features
from ltbench.models.factory import create_backbone
from ltbench.models.heads import build_head
from ltbench.models.text_classifier import build_text_classifier


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tiny",
                        help="an open_clip backbone: tiny, RN50:none, ViT-B-16:none, RN50:openai, ...")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast on CUDA")
    parser.add_argument("--images", type=int, default=2000, help="images in the synthetic split")
    parser.add_argument("--image-size", type=int, default=64, help="side of the stored images in pixels")
    parser.add_argument("--classes", type=int, default=100, help="classes of the synthetic split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="extraction runs per path, taking turns; the best of each is reported")
    parser.add_argument("--probe-epochs", type=int, default=3,
                        help="linear-probe epochs per variant (>= 2; the median after the first is reported)")
    parser.add_argument("--text-classes", default="10,1000,8142",
                        help="class counts to build the 80-template classifier for (comma-separated; "
                             "empty: skip)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.precision == "bf16" and not args.device.startswith("cuda"):
        parser.error("--precision bf16 is autocast on CUDA; on CPU ltbench runs fp32")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.probe_epochs < 2:
        parser.error("--probe-epochs must be at least 2: the first epoch also pays one-time set-up")
    args.text_classes = [int(count) for count in args.text_classes.split(",") if count.strip()]
    return args


class Memory:
    """Peak memory per measurement on CUDA; the process's peak resident set on CPU (cannot be reset)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def reset(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> str:
        if self.cuda:
            return f"{format_bytes(torch.cuda.max_memory_allocated())} (CUDA)"
        kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        return f"{format_bytes(kilobytes * (1 if sys.platform == 'darwin' else 1024))} (RSS)"


def timed(device, function):
    """(result, seconds) of function(), waiting for the GPU's work to finish."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def synthetic_split(images: int, size: int, classes: int, seed: int = 0) -> ArraySplit:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(images) % classes)
    return ArraySplit(name="synthetic", images=pixels, labels=labels)


class _PlainDataset(torch.utils.data.Dataset):
    """What a user writes by hand: a PIL image per item through a torchvision preprocess."""

    def __init__(self, split, preprocess):
        self.images, self.labels, self.preprocess = split.images, split.labels, preprocess

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        from PIL import Image

        return self.preprocess(Image.fromarray(self.images[index])), int(self.labels[index])


def plain_preprocess(spec):
    """torchvision preprocessing of the model's resolution, as in open_clip's own eval transform."""
    from torchvision import transforms as T

    mode = getattr(T.InterpolationMode, spec.interpolation.upper())
    return T.Compose([T.Resize(spec.size, interpolation=mode), T.CenterCrop(spec.size), T.ToTensor(),
                      T.Normalize(spec.mean, spec.std)])


@torch.no_grad()
def plain_features(model, split, preprocess, batch_size, workers, device, bf16) -> np.ndarray:
    loader = torch.utils.data.DataLoader(_PlainDataset(split, preprocess), batch_size=batch_size,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    chunks = []
    for images, _ in loader:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            features = model.encode_image(images.to(device, non_blocking=True))
        chunks.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(chunks).numpy()


def linear_probe_epoch(ctx, encoder, split, features, batch_size, classes, epochs, reencode: bool) -> float:
    """Seconds per epoch of a linear head (ltbench's trainer, AdamW) on cached features, or on
    features the frozen encoder computes from every batch of images: the median epoch after the
    first, which also pays one-time set-up (optimizer state, first autograd graph)."""
    torch.manual_seed(0)
    head = build_head("linear", encoder.embed_dim, classes, scale=1.0).to(ctx.device)
    sampler = build_sampler("instance", split.labels, seed=0)
    if reencode:
        batches = epoch_batches(split, encoder.eval_transform, None, batch_size, sampler, seed=0)

        def forward(module, images):
            with torch.no_grad():  # the encoder is frozen: only the head needs a graph
                features = encoder.encode_images(images)
            return module(features)
    else:
        inputs = torch.from_numpy(np.array(features)).to(ctx.device)
        batches = TensorBatches(inputs, torch.from_numpy(split.labels).to(ctx.device), sampler, batch_size)
        forward = None
    steps = -(-len(split) // batch_size)
    trainer = ctx.trainer({"epochs": epochs, "optimizer": "adamw", "lr": 1e-3, "momentum": 0.9, "nesterov": False,
                           "weight_decay": 5e-4, "schedule": "cosine", "grad_accum_steps": 1, "log_interval": steps},
                          name="reencode" if reencode else "cached")
    history = trainer.fit(head, batches, steps, loss_fn=F.cross_entropy, forward=forward)
    return float(np.median([epoch["seconds"] for epoch in history[1:]]))


def _rate(images_per_second: float) -> str:
    return f"{images_per_second:,.0f} img/s" if images_per_second >= 100 else f"{images_per_second:.1f} img/s"


def measure(args) -> tuple:
    device = torch.device(args.device)
    memory = Memory(device)
    rows, numbers = [], {}

    def add(section, name, value, key, number, peak=None):
        rows.append([section, name, value, peak or memory.peak()])
        numbers[key] = number
        print(f"  {section}: {name}: {value}", file=sys.stderr, flush=True)  # long runs show progress

    with tempfile.TemporaryDirectory() as scratch:
        ctx = RunContext(device=device, seed=0, work_dir=Path(scratch) / "work",
                         cache=ArrayCache(Path(scratch) / "warmup"), amp=args.precision == "bf16",
                         num_workers=args.workers, progress=False)
        torch.manual_seed(0)
        encoder = create_backbone(args.backbone, device)
        if not encoder.is_clip:
            raise SystemExit(f"{args.backbone}: the plain loop and the text classifier need an open_clip backbone")
        spec = encoder.eval_transform
        split = synthetic_split(args.images, args.image_size, args.classes)
        warmup = synthetic_split(args.batch_size, args.image_size, args.classes, seed=1)
        preprocess = plain_preprocess(spec)
        # One batch through each path first: allocator and kernel set-up are not what is measured.
        plain_features(encoder.model, warmup, preprocess, args.batch_size, 0, device, ctx.use_bf16)
        image_features(encoder, warmup, ctx, args.batch_size)

        # The two paths take turns, best of --repeats each: a burst of other work on the machine
        # then slows one try of each instead of one path.
        ltbench_seconds, plain_seconds = [], []
        for repeat in range(args.repeats):
            ctx = dataclasses.replace(ctx, cache=ArrayCache(Path(scratch) / f"cache{repeat}"))  # cold
            memory.reset()
            features, seconds = timed(device, lambda: image_features(encoder, split, ctx, args.batch_size))
            ltbench_seconds.append(seconds)
            ltbench_peak = memory.peak()
            memory.reset()
            _, seconds = timed(device, lambda: plain_features(encoder.model, split, preprocess, args.batch_size,
                                                              args.workers, device, ctx.use_bf16))
            plain_seconds.append(seconds)
        ltbench_rate, plain_rate = len(split) / min(ltbench_seconds), len(split) / min(plain_seconds)
        add("extraction", "ltbench image_features, cold cache", _rate(ltbench_rate),
            "ltbench_images_per_second", ltbench_rate, peak=ltbench_peak)
        add("extraction", f"plain open_clip + DataLoader ({args.workers} workers)", _rate(plain_rate),
            "plain_images_per_second", plain_rate)
        add("extraction", "ratio ltbench / plain", f"{ltbench_rate / plain_rate:.2f}x",
            "extraction_ratio", ltbench_rate / plain_rate)
        memory.reset()
        _, seconds = timed(device, lambda: image_features(encoder, split, ctx, args.batch_size))
        add("extraction", "image_features again (cache hit, no encoding)", f"{seconds * 1000:.1f} ms",
            "cache_hit_seconds", seconds)

        memory.reset()
        cached = linear_probe_epoch(ctx, encoder, split, features, args.batch_size, args.classes,
                                    args.probe_epochs, reencode=False)
        add("linear probe", "epoch on cached features", f"{cached * 1000:.1f} ms", "epoch_cached_seconds", cached)
        memory.reset()
        reencoded = linear_probe_epoch(ctx, encoder, split, features, args.batch_size, args.classes,
                                       args.probe_epochs, reencode=True)
        add("linear probe", "epoch re-encoding every batch", f"{reencoded * 1000:.1f} ms",
            "epoch_reencode_seconds", reencoded)
        add("linear probe", "speed-up of the cache", f"{reencoded / cached:.0f}x", "epoch_speedup", reencoded / cached)

        if args.text_classes:
            templates = templates_by_name("openai_imagenet")
            for count in args.text_classes:
                names = [f"synthetic class {index}" for index in range(count)]
                memory.reset()
                _, seconds = timed(device, lambda: build_text_classifier(encoder, names, templates,
                                                                         autocast=ctx.autocast))
                # Per class too: linear growth reads as a constant column.
                add("text classifier", f"{count:,} classes x {len(templates)} templates",
                    f"{seconds:.2f} s ({1e3 * seconds / count:.1f} ms / class)",
                    f"text_classifier_{count}_seconds", seconds)
    return rows, numbers


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = f", {torch.get_num_threads()} threads" if args.device == "cpu" else ""
    header = (f"ltbench perf: {args.backbone} on {args.device}{threads}, {args.precision}, {args.images:,} "
              f"random {args.image_size}x{args.image_size} images, {args.classes} classes, batch {args.batch_size}")
    print(header, flush=True)
    rows, numbers = measure(args)
    print(tabulate(rows, headers=["section", "measurement", "value", "peak memory"], tablefmt="github",
                   disable_numparse=True))
    if args.json:
        settings = {key: value for key, value in vars(args).items() if key != "json"}
        Path(args.json).write_text(json.dumps({"settings": settings, "results": numbers}, indent=2) + "\n")


if __name__ == "__main__":
    main()
