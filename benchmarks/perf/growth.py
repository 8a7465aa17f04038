"""How each cost grows with the size of the problem: one table, with a growth column.

    python benchmarks/perf/growth.py --threads 1

- extraction: ltbench ``image_features`` (cold cache, the tiny CLIP, synthetic in-memory images of
  --image-size pixels, the model's own size so no resize) at --images sizes; time per 1k images;
- text classifier: ``build_text_classifier`` with the tiny text tower, --templates of the 80
  OpenAI templates (8 by default, so iNaturalist's 8142 classes are built in full, not estimated)
  over ImageNet's class names repeated to the count; time per class;
- decoder step: one AdamW step of Imbalance-VLM's TokenDecoder (depth 3, 4 heads) on
  --decoder-batch images of --decoder-tokens x --decoder-width random tokens, at --classes
  class counts; time per step.

growth = cost per unit at that size / cost per unit at the smallest size: 1.0 is linear in
the size (constant per 1k images, per class); a step's cost does not have to grow at all. Each
row is the best of --repeats. Prompt tuning's cost per class (phase A with class_ce, every class
prompt encoded with gradients) is timed elsewhere (gpu_check.py's prompt_tuning section).
Only speed means something here: the weights are random, the pixels noise.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tabulate import tabulate

from ltbench.data.base import ArraySplit
from ltbench.data.prompts import imagenet_clip_classnames, openai_imagenet_templates
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext
from ltbench.engine.features import image_features
from ltbench.engine.trainer import build_optimizer
from ltbench.models.factory import create_backbone
from ltbench.models.text_classifier import build_text_classifier

OPTIMIZER = {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
             "weight_decay_1d": True}


def _sizes(text: str):
    return [int(value) for value in text.split(",") if value.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--images", type=_sizes, default=[1000, 4000, 16000])
    parser.add_argument("--image-size", type=int, default=32, help="the tiny CLIP's input size")
    parser.add_argument("--batch-size", type=int, default=256, help="extraction batch")
    parser.add_argument("--classes", type=_sizes, default=[100, 1000, 8142],
                        help="class counts of the text classifier and the decoder")
    parser.add_argument("--templates", type=int, default=8, help="templates per class (of the 80 OpenAI ones)")
    parser.add_argument("--decoder-batch", type=int, default=32)
    parser.add_argument("--decoder-tokens", type=int, default=50, help="tokens per image (ViT-B/32 at 224 px: 50)")
    parser.add_argument("--decoder-width", type=int, default=768)
    parser.add_argument("--decoder-steps", type=int, default=5, help="timed steps per class count")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    for name in ("images", "classes"):
        if not getattr(args, name) or min(getattr(args, name)) < 1:
            parser.error(f"--{name}: comma-separated positive sizes")
    return args


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA runs kernels after the Python call returns)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _best(repeats: int, function, device) -> float:
    """The fastest of `repeats` calls, each timed from an idle device to an idle device."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return min(times)


def extraction_seconds(encoder, count: int, args, device, scratch: Path) -> float:
    rng = np.random.default_rng(0)
    split = ArraySplit(name="synthetic", images=rng.integers(0, 256, (count, args.image_size, args.image_size, 3),
                                                              dtype=np.uint8), labels=np.arange(count) % 10)

    def extract():  # a cold cache every time: the encoding is what is timed
        folder = Path(tempfile.mkdtemp(dir=scratch))
        ctx = RunContext(device=device, seed=0, work_dir=folder / "work", cache=ArrayCache(folder), amp=False,
                         progress=False)
        image_features(encoder, split, ctx, args.batch_size)
    return _best(args.repeats, extract, device)


def text_seconds(clip, count: int, args) -> float:
    names = (imagenet_clip_classnames() * -(-count // 1000))[:count]
    templates = openai_imagenet_templates()[: args.templates]
    return _best(args.repeats, lambda: build_text_classifier(clip, names, templates, 1024), clip.device)


def decoder_step_seconds(count: int, args, device) -> float:
    from ltbench.methods.decoder.model import TokenDecoder

    torch.manual_seed(0)
    model = TokenDecoder(args.decoder_width, count).to(device).train()
    optimizer = build_optimizer(list(model.parameters()), OPTIMIZER)
    tokens = torch.randn(args.decoder_batch, args.decoder_tokens, args.decoder_width, device=device)
    labels = torch.randint(0, count, (args.decoder_batch,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(tokens), labels).backward()
        optimizer.step()
    step()  # first step: optimizer state and allocations
    return _best(args.repeats, lambda: [step() for _ in range(args.decoder_steps)], device) / args.decoder_steps


def _rows(cost: str, unit: str, per, measured):
    """Table rows of one cost: (cost, size, seconds, seconds per unit, growth vs the smallest size)."""
    rows, first = [], None
    for size, seconds in measured:
        each = seconds / per(size)
        first = each if first is None else first
        rows.append({"cost": cost, "size": size, "seconds": seconds, "unit": unit, "per_unit": each,
                     "growth": each / first})
    return rows


def measure(args) -> list:
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        clip = create_backbone("tiny", device)
        extraction = [(count, extraction_seconds(clip, count, args, device, Path(scratch))) for count in args.images]
        text = [(count, text_seconds(clip, count, args)) for count in args.classes]
    decoder = [(count, decoder_step_seconds(count, args, device)) for count in args.classes]
    return (_rows("extraction (tiny, cold cache)", "1k images", lambda n: n / 1000, extraction)
            + _rows(f"text classifier (tiny, {args.templates} templates)", "class", lambda n: n, text)
            + _rows(f"decoder step (batch {args.decoder_batch}, {args.decoder_tokens} x {args.decoder_width} tokens)",
                    "step", lambda n: 1, decoder))


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args)
    table = [[row["cost"], f"{row['size']:,}", f"{row['seconds']:.3f} s", f"{row['per_unit'] * 1e3:.2f} ms / {row['unit']}",
              f"{row['growth']:.2f}x"] for row in rows]
    print(f"ltbench cost growth on {args.device}, {args.threads} thread(s)")
    print(tabulate(table, headers=["cost", "size", "time", "per unit", "growth"], tablefmt="github"))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
