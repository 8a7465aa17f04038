"""What a CoOp prompt-tuning step costs as the classes grow (issues 14 and 18): measured on the
CPU at a few small class counts, extrapolated to 100 / 1000 / 8142 classes, and said so.

    python benchmarks/perf/prompt_tuning.py --backbone ViT-B-16:none --classes 8,24 --threads 1

A step (methods/prompt_tuning: the real PromptTuner) encodes every class's prompt with
gradients to the context, so its time and its activation memory grow linearly with C. Per
measured C, with activation checkpointing off and on:
- seconds per step (forward, backward, SGD step; batch --batch of cached image features);
- the bytes autograd keeps for the backward pass, counted with saved_tensors_hooks (storages
  counted once; the frozen weights excluded). With checkpointing only the chunk outputs stay;
  the backward pass then re-runs one chunk at a time, whose bytes are those of a pass without
  checkpointing over --chunk prompts.
The extrapolation: time = a + b C (least squares over the measured C; the largest C's time per
class where noise makes the slope <= 0); activations = bytes per
prompt x C without checkpointing, or the kept bytes per prompt x C + one chunk's activations
with it. Peak memory adds the model's weights (fp32, and their bf16 copies under autocast).
CPU fp32 numbers: on a GPU under bf16 autocast the activations are about half (an estimate,
not a measurement; gpu_check.py's prompt_tuning section measures the GPU).
Random weights: only the speed and the memory mean something here.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tabulate import tabulate

from ltbench.data.prompts import imagenet_clip_classnames
from ltbench.methods.prompt_tuning.method import build_tuner
from ltbench.models.factory import create_backbone

TARGETS = (100, 1000, 8142)
CONTEXT = {"n_ctx": 16, "class_specific": False, "class_position": "end", "init": "random", "init_std": 0.02,
           "init_phrase": "a photo of a"}


def class_names(count: int):
    """ImageNet's names, repeated with a suffix beyond 1000 (iNaturalist's names are about as long)."""
    names = imagenet_clip_classnames()
    return [names[i % len(names)] + ("" if i < len(names) else f" {i // len(names)}") for i in range(count)]


class SavedBytes:
    """Bytes of the tensors autograd saves for backward inside the block (each storage once,
    the frozen weights left out)."""

    def __init__(self, model: torch.nn.Module):
        self.excluded = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen, self.bytes = set(), 0

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.excluded and key not in self.seen:
            self.seen.add(key)
            self.bytes += storage.nbytes()
        return tensor

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def measure(clip, classes: int, args, checkpointing: bool) -> dict:
    tuner = build_tuner(clip, class_names(classes), {**CONTEXT, "n_ctx": args.n_ctx}, 0, "clip", args.chunk,
                        checkpointing, "cpu")
    optimizer = torch.optim.SGD([tuner.learner.ctx], lr=0.002, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(args.batch, clip.embed_dim, generator=generator), dim=-1)
    labels = torch.randint(0, classes, (args.batch,), generator=generator)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(tuner(images), labels).backward()
        optimizer.step()

    with SavedBytes(clip.model) as saved:
        loss = F.cross_entropy(tuner(images), labels)
    loss.backward()
    step()  # warm-up
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - started) / args.steps
    longest = int((tuner.learner.tokens.argmax(dim=-1) + 1).max())
    return {"classes": classes, "checkpointing": checkpointing, "step_seconds": seconds,
            "saved_bytes": saved.bytes, "longest_prompt_tokens": longest}


def chunk_bytes(clip, args) -> int:
    """Activations of one chunk's backward pass: a pass without checkpointing over --chunk prompts
    (the recomputation holds these, one chunk at a time)."""
    return measure_saved(clip, args.chunk, args)


def measure_saved(clip, classes: int, args) -> int:
    tuner = build_tuner(clip, class_names(classes), {**CONTEXT, "n_ctx": args.n_ctx}, 0, "clip", classes, False, "cpu")
    images = F.normalize(torch.randn(args.batch, clip.embed_dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    with SavedBytes(clip.model) as saved:
        tuner(images).sum()
    return saved.bytes


def gib(value: float) -> str:
    return f"{value / 2 ** 30:.2f} GiB" if value >= 2 ** 30 else f"{value / 2 ** 20:.1f} MiB"


def estimates(clip, rows, args) -> list:
    """Time and memory at TARGETS from the measured rows (least-squares lines in C)."""
    weights = sum(p.numel() for p in clip.model.parameters())
    fixed = weights * 4 + weights * 2  # fp32 weights + their bf16 autocast copies on a GPU
    out = []
    per_class_chunk = chunk_bytes(clip, args) / args.chunk
    for checkpointing in (False, True):
        measured = [row for row in rows if row["checkpointing"] == checkpointing]
        counts = np.array([row["classes"] for row in measured], dtype=float)
        seconds = np.array([row["step_seconds"] for row in measured])
        saved = np.array([row["saved_bytes"] for row in measured], dtype=float)
        slope, intercept = np.polyfit(counts, seconds, 1) if len(counts) > 1 else (0.0, 0.0)
        if slope <= 0:  # timing noise at tiny sizes: the largest measured C, per class
            slope, intercept = seconds[-1] / counts[-1], 0.0
        kept_per_class = float(np.mean(saved / counts))
        for classes in TARGETS:
            activations = kept_per_class * classes
            if checkpointing:
                activations += per_class_chunk * min(args.chunk, classes)
            out.append({"classes": classes, "checkpointing": checkpointing,
                        "step_seconds_estimate": float(intercept + slope * classes),
                        "activation_bytes_estimate_fp32": activations,
                        "peak_bytes_estimate_gpu_bf16": fixed + activations / 2})
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="ViT-B-16:none")
    parser.add_argument("--classes", default="8,24", help="class counts measured on the CPU")
    parser.add_argument("--batch", type=int, default=32, help="images per step (CoOp: 32)")
    parser.add_argument("--n-ctx", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=256, help="prompts per checkpointed chunk (text_chunk)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    args.classes = [int(value) for value in args.classes.split(",") if value]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = create_backbone(args.backbone, "cpu")
    clip.model.eval().requires_grad_(False)
    print(f"ltbench prompt-tuning perf: {args.backbone} on the CPU, {torch.get_num_threads()} threads, fp32, "
          f"M={args.n_ctx}, batch {args.batch}, chunk {args.chunk}", flush=True)
    rows = [measure(clip, classes, args, checkpointing) for checkpointing in (False, True) for classes in args.classes]
    print(tabulate([[row["classes"], row["checkpointing"], f"{row['step_seconds']:.3f} s",
                     gib(row["saved_bytes"]), row["longest_prompt_tokens"]] for row in rows],
                   headers=["classes (measured)", "checkpointing", "step", "kept for backward", "longest prompt"],
                   tablefmt="github", disable_numparse=True))
    predicted = estimates(clip, rows, args)
    print("\nEstimated (extrapolated linearly in C from the measured rows; CPU time, GPU memory = fp32 weights + "
          "bf16 copies + half the fp32 activations):")
    print(tabulate([[row["classes"], row["checkpointing"], f"{row['step_seconds_estimate']:.2f} s",
                     f"{1e3 * row['step_seconds_estimate'] / row['classes']:.1f} ms",
                     gib(row["activation_bytes_estimate_fp32"]), gib(row["peak_bytes_estimate_gpu_bf16"])]
                    for row in predicted],
                   headers=["classes", "checkpointing", "CPU step (est.)", "per class", "activations fp32 (est.)",
                            "GPU peak bf16 (est.)"], tablefmt="github", disable_numparse=True))
    results = {"settings": vars(args), "measured": rows, "estimated": predicted}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
