"""The measurements a CPU cannot show, in one JSON (run through gpu_check.sh on one GPU).

Random weights (``MODEL:none``), synthetic inputs: only speed and memory mean something.
Each section is timed with CUDA events after warm-up steps (the device synchronised before the
clock is read) and guarded: a failing section records its error and the others still run; the
last line is a summary of what ran and failed; --budget-s stops starting new sections. "fp32"
means fp32 for matmuls and convolutions (TF32 off for cuBLAS and cuDNN; the report says so).
Memory is the peak allocated on the device in use (--device cuda:N), reset per measurement.

- extraction: RN50 and ViT-B-16 image towers at --batch, fp32 vs bf16 autocast (channels_last
  for conv towers, as ltbench runs them), images/s and peak memory;
- phase_a: BALLAD phase-A steps (ViT-B-16, contrastive over a batch of --phase-a-batch images
  of 1000 classes, AdamW, bf16 autocast), images/s and peak memory;
- decoder: Imbalance-VLM's token decoder (depth 3, 4 heads, 197 x 768 tokens, 1000 classes),
  steps at --batch, images/s and peak memory;
- prompt_tuning: the real CoOp step (methods/prompt_tuning, checkpointed chunks) at
  --prompt-classes (1000 and 8142) classes, batch 32, peak memory and step time; at 1000 also
  without checkpointing;
- text_classifier: the 1000-class x 80-template ViT-B-16 classifier, ltbench against open_clip's
  full-context loop, seconds and max |difference|;
- jpeg: decoding --jpegs synthetic JPEGs in a photo-collection mix (jpeg_mix: mostly 500 x 375 and
  375 x 500, some 800 x 600 to 1600 x 1200, every 8th progressive, a few greyscale, one CMYK, as
  ImageNet holds about 22): torchvision.io.decode_jpeg on the GPU in batches (the files nvJPEG
  takes) against Pillow + the eval transform on the CPU (one process), images/s; and ltbench's
  own gpu_jpeg path on every file (decode, resize, crop, normalise on the device), images/s and
  its max |difference| from the Pillow pipeline.
"""
import argparse
import contextlib
import io
import json
import sys
import time
import traceback

import numpy as np
import torch
import torch.nn.functional as F

# The optimizer settings the timed steps use besides their own optimizer and lr.
OPTIMIZER = {"momentum": 0.9, "nesterov": False, "weight_decay": 5e-4, "weight_decay_1d": True}

def cuda_timed(fn, steps: int, warmup: int = 3, device=None) -> float:
    """Seconds per call of fn, after `warmup` calls (CUDA events on the device in use, read after
    it synchronised; wall clock on the CPU)."""
    for _ in range(warmup):
        fn()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3 / steps
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - started) / steps


def peak_gib(device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def autocast(device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def tf32_settings() -> dict:
    return {"tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32)}


@contextlib.contextmanager
def strict_fp32():
    """fp32 as written: no TF32 in cuBLAS matmuls nor in cuDNN convolutions (on by default there)."""
    before = tf32_settings()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before["tf32_matmul"]
        torch.backends.cudnn.allow_tf32 = before["tf32_cudnn"]


def precision_scope(precision: str):
    """What a measurement at `precision` runs under: strict fp32, or bf16 autocast."""
    return strict_fp32() if precision == "fp32" else contextlib.nullcontext()


def extraction(args, device):
    from ltbench.engine.transfer import uses_channels_last
    from ltbench.models.factory import create_backbone

    out = {}
    for name in args.backbones:
        clip = create_backbone(name, str(device))
        size = clip.eval_transform.size
        images = torch.randn(args.batch, 3, size, size, device=device)
        if uses_channels_last(clip.model.visual, device):
            images = images.contiguous(memory_format=torch.channels_last)
        entry, encode = {}, clip.encode_images
        for precision in ("fp32", "bf16"):
            reset_peak(device)

            @torch.no_grad()
            def step():
                with autocast(device, precision == "bf16"):
                    encode(images)
            with precision_scope(precision):
                seconds = cuda_timed(step, args.steps, device=device)
                entry[precision] = {"images_per_second": args.batch / seconds, "peak_gib": peak_gib(device),
                                    **tf32_settings()}
        entry["bf16_speedup"] = entry["bf16"]["images_per_second"] / entry["fp32"]["images_per_second"]
        out[name] = entry
        clip = encode = None  # frees the model before the next one loads
    return out


def _tuner(args, device, classes: int, objective: str):
    from ltbench.data.prompts import imagenet_clip_classnames, openai_imagenet_templates
    from ltbench.models.clip_finetune import ClipFineTuner
    from ltbench.models.factory import create_backbone
    from ltbench.models.trainable import set_trainable

    clip = create_backbone(args.clip, str(device))
    names = (imagenet_clip_classnames() * -(-classes // 1000))[:classes]
    templates = openai_imagenet_templates()[:8]
    tokens = clip.tokenize([t.format(n) for n in names for t in templates])
    set_trainable(clip.model, "all")
    tuner = ClipFineTuner(clip.model, tokens, global_pairs=objective == "contrastive").to(device).train()
    return clip, tuner, len(templates)


def _phase_a_step(args, device, tuner, optimizer, batch, classes, templates, objective, size):
    from ltbench.losses import multi_positive_contrastive

    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    if objective == "contrastive":
        rows_np, index_np = np.unique(labels.cpu().numpy() * templates, return_inverse=True)
    else:
        rows_np, index_np = np.arange(classes) * templates, np.arange(classes)
    rows, index = torch.from_numpy(rows_np).to(device), torch.from_numpy(index_np.reshape(-1)).to(device)
    length = int(tuner.prompt_lengths[rows_np].max())

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, True):
            logits = tuner((images, rows, index, length))
        loss = multi_positive_contrastive(logits.float(), labels) if objective == "contrastive" \
            else F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
    return step


def phase_a(args, device):
    from ltbench.engine.trainer import build_optimizer

    clip, tuner, templates = _tuner(args, device, 1000, "contrastive")
    optimizer = build_optimizer([p for p in tuner.parameters() if p.requires_grad],
                                {**OPTIMIZER, "optimizer": "adamw", "lr": 1e-5})
    reset_peak(device)
    step = _phase_a_step(args, device, tuner, optimizer, args.phase_a_batch, 1000, templates, "contrastive",
                         clip.eval_transform.size)
    seconds = cuda_timed(step, args.steps, device=device)
    return {"backbone": args.clip, "batch": args.phase_a_batch, "images_per_second": args.phase_a_batch / seconds,
            "peak_gib": peak_gib(device)}


def prompt_tuning(args, device):
    """The real CoOp step (methods/prompt_tuning's PromptTuner: M = 16 unified context, every
    class's prompt encoded with gradients in checkpointed chunks of 256, SGD lr 0.002, bf16
    autocast, batch 32 of cached image features) at each of --prompt-classes classes; at the
    smallest count also without checkpointing, for its memory (an out-of-memory is recorded)."""
    from ltbench.data.prompts import imagenet_clip_classnames
    from ltbench.methods.prompt_tuning.method import build_tuner
    from ltbench.models.factory import create_backbone

    clip = create_backbone(args.clip, str(device))
    clip.model.eval().requires_grad_(False)
    context = {"n_ctx": 16, "class_specific": False, "class_position": "end", "init": "random", "init_std": 0.02,
               "init_phrase": "a photo of a"}
    names = imagenet_clip_classnames()
    out = {}
    for index, classes in enumerate(args.prompt_classes):
        class_names = [names[i % len(names)] + ("" if i < len(names) else f" {i // len(names)}") for i in range(classes)]
        for checkpointing in (True, False) if index == 0 else (True,):
            key = f"{classes}" + ("" if checkpointing else "_no_checkpointing")
            try:
                tuner = build_tuner(clip, class_names, context, 0, "clip", 256, checkpointing, device)
                optimizer = torch.optim.SGD([tuner.learner.ctx], lr=0.002, momentum=0.9)
                images = F.normalize(torch.randn(32, clip.embed_dim, device=device), dim=-1)
                labels = torch.randint(0, classes, (32,), device=device)

                def step():
                    optimizer.zero_grad(set_to_none=True)
                    with autocast(device, True):
                        logits = tuner(images)
                    F.cross_entropy(logits.float(), labels).backward()
                    optimizer.step()

                reset_peak(device)
                seconds = cuda_timed(step, max(2, args.steps // 2), warmup=1, device=device)
                out[key] = {"batch": 32, "step_seconds": seconds, "peak_gib": peak_gib(device),
                            "checkpointing": checkpointing}
            except torch.cuda.OutOfMemoryError as error:
                out[key] = {"error": f"out of memory: {str(error).splitlines()[0][:120]}"}
            finally:
                tuner = optimizer = step = None
    return out


def decoder(args, device):
    from ltbench.engine.trainer import build_optimizer
    from ltbench.methods.decoder.model import TokenDecoder

    model = TokenDecoder(768, 1000).to(device).train()
    optimizer = build_optimizer(list(model.parameters()), {**OPTIMIZER, "optimizer": "adamw", "lr": 1e-3})
    tokens = torch.randn(args.batch, 197, 768, device=device, dtype=torch.float16)
    labels = torch.randint(0, 1000, (args.batch,), device=device)
    reset_peak(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, True):
            loss = F.cross_entropy(model(tokens).float(), labels)
        loss.backward()
        optimizer.step()
    seconds = cuda_timed(step, args.steps, device=device)
    return {"batch": args.batch, "images_per_second": args.batch / seconds, "peak_gib": peak_gib(device)}


def text_classifier(args, device):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from ltbench.data.prompts import imagenet_clip_classnames, openai_imagenet_templates
    from ltbench.models.factory import create_backbone
    from ltbench.models.text_classifier import build_text_classifier

    clip = create_backbone(args.clip, str(device))
    names, templates = imagenet_clip_classnames()[: args.text_classes], openai_imagenet_templates()
    out = {"classes": len(names), "templates": len(templates)}
    for precision in ("fp32", "bf16"):
        timings = {}
        for label, build in (("ltbench", lambda: build_text_classifier(clip, names, templates, 1024,
                                                                      autocast=lambda: autocast(device, precision == "bf16"))),
                             ("open_clip", lambda: build_zero_shot_classifier(clip.model, clip.tokenizer, names, templates,
                                                                               num_classes_per_batch=10, device=device).T)):
            with autocast(device, precision == "bf16"), precision_scope(precision):
                timings[label] = cuda_timed(lambda: timings.__setitem__(label + "_result", build()), 1, warmup=1,
                                            device=device)
        difference = (timings.pop("ltbench_result").float() - timings.pop("open_clip_result").float()).abs().max()
        out[precision] = {"ltbench_seconds": timings["ltbench"], "open_clip_seconds": timings["open_clip"],
                          "speedup": timings["open_clip"] / timings["ltbench"], "max_abs_difference": float(difference)}
    return out


# (width, height) of the mix, with how many of every 20 images have it: ImageNet's photos are
# mostly about 500 x 375 (landscape) or 375 x 500, with a tail of larger ones.
JPEG_SIZES = (((500, 375), 10), ((375, 500), 4), ((500, 333), 2), ((800, 600), 2), ((1024, 768), 1),
              ((1600, 1200), 1))


def jpeg_mix(count: int, seed: int = 0):
    """[(JPEG bytes as a uint8 tensor, kind, pixels)] in a realistic mix: the sizes of JPEG_SIZES,
    every 8th progressive, every 25th greyscale, and one CMYK file (the 4th), which nvJPEG rejects."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [size for size, share in JPEG_SIZES for _ in range(share)]
    sizes = [sizes[i] for i in rng.permutation(len(sizes))]  # interleaved: a short mix has several sizes
    blobs = []
    for index in range(count):
        width, height = sizes[index % len(sizes)]
        pixels = rng.integers(0, 255, size=(max(height // 8, 2), max(width // 8, 2), 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((width, height), Image.BILINEAR)  # smooth, photo-like entropy
        kind, options = "baseline", {"quality": 90}
        if index == min(3, count - 1):
            kind, image = "cmyk", image.convert("CMYK")
        elif index % 25 == 24:
            kind, image = "grey", image.convert("L")
        elif index % 8 == 7:
            kind, options = "progressive", {"quality": 90, "progressive": True}
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        blobs.append((torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8), kind, width * height))
    return blobs


def jpeg(args, device):
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    from ltbench.data.transforms import TransformSpec

    mix = jpeg_mix(args.jpegs)
    blobs, kinds = [blob for blob, _, _ in mix], [kind for _, kind, _ in mix]
    spec = TransformSpec(size=224, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28))
    out = {"images": args.jpegs, "kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
           "megapixels": sum(pixels for _, _, pixels in mix) / 1e6}
    for label, draft in (("cpu_pil", False), ("cpu_pil_draft", True)):
        transform = TransformSpec(**{**spec.__dict__, "jpeg_draft": draft}).pil_transform()
        started = time.perf_counter()
        for blob in blobs:
            with Image.open(io.BytesIO(blob.numpy().tobytes())) as image:
                transform(image)
        out[label + "_images_per_second"] = args.jpegs / (time.perf_counter() - started)
    if device.type == "cuda":
        nvjpeg = [blob for blob, kind, _ in mix if kind != "cmyk"]  # torchvision alone: only what nvJPEG takes

        def gpu():
            for start in range(0, len(nvjpeg), 256):
                decoded = decode_jpeg(nvjpeg[start: start + 256], mode=ImageReadMode.RGB, device=device)
                batch = torch.stack([F.interpolate(image[None].float(), size=(224, 224), mode="bilinear",
                                                   antialias=True)[0] for image in decoded])
                spec_mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1) * 255
                ((batch - spec_mean) / 255).sum()
        seconds = cuda_timed(gpu, 2, warmup=1, device=device)
        out["gpu_decode_jpeg_images_per_second"] = len(nvjpeg) / seconds
    out.update(_ltbench_batched_decode(blobs, kinds, spec, device))
    return out


def _ltbench_batched_decode(blobs, kinds, spec, device):
    """ltbench's gpu_jpeg path (data/jpeg_decode.py: batched decode_jpeg, then the PIL-exact batch
    transform on the device) in batches of 256, and its largest difference from Pillow + the
    eval transform over the first batch, for the CMYK file apart (on the CPU the path runs with
    torchvision's CPU decoder)."""
    from PIL import Image

    from ltbench.data.jpeg_decode import decode_payloads, transform_images
    from ltbench.data.transforms import TransformSpec

    gpu_spec = TransformSpec(**{**spec.__dict__, "gpu_jpeg": True})

    def run():
        for start in range(0, len(blobs), 256):
            transform_images(decode_payloads(blobs[start: start + 256], device), gpu_spec).sum()

    seconds = cuda_timed(run, 2, warmup=1, device=device)
    first = blobs[:256]
    batched = transform_images(decode_payloads(first, device), gpu_spec).cpu()
    transform = spec.pil_transform()
    pillow = torch.stack([transform(Image.open(io.BytesIO(blob.numpy().tobytes())).convert("RGB")) for blob in first])
    difference = (batched - pillow).abs().flatten(1).max(dim=1).values
    cmyk = torch.tensor([kind == "cmyk" for kind in kinds[:len(first)]])
    return {"ltbench_gpu_jpeg_device": str(device),
            "ltbench_gpu_jpeg_images_per_second": len(blobs) / seconds,
            "ltbench_gpu_jpeg_max_abs_difference_vs_pillow": float(difference[~cmyk].max()),
            "ltbench_gpu_jpeg_cmyk_max_abs_difference_vs_pillow": float(difference[cmyk].max()) if cmyk.any() else None}


SECTIONS = {"extraction": extraction, "phase_a": phase_a, "decoder": decoder, "prompt_tuning": prompt_tuning,
            "text_classifier": text_classifier, "jpeg": jpeg}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--backbones", default="RN50:none,ViT-B-16:none")
    parser.add_argument("--clip", default="ViT-B-16:none", help="backbone of phase A, prompt tuning, text classifier")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--phase-a-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--text-classes", type=int, default=1000)
    parser.add_argument("--prompt-classes", default="1000,8142", help="class counts of the prompt_tuning section")
    parser.add_argument("--jpegs", type=int, default=2000, help="images in the jpeg section's mix (jpeg_mix)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="no section starts after this many seconds")
    args = parser.parse_args(argv)
    args.backbones = [name for name in args.backbones.split(",") if name]
    args.sections = [name for name in args.sections.split(",") if name]
    args.prompt_classes = [int(value) for value in args.prompt_classes.split(",") if value]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose among {sorted(SECTIONS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":  # the device in use is the current one: events, peaks and syncs read it
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "settings": dict(vars(args)), "results": {},
              "errors": {}, "seconds": {}}
    started = time.perf_counter()
    for name in args.sections:
        if time.perf_counter() - started > args.budget_s:
            report["errors"][name] = f"skipped: the {args.budget_s:.0f} s budget was spent"
            continue
        section_start = time.perf_counter()
        try:
            report["results"][name] = SECTIONS[name](args, device)
        except Exception:  # record and go on: one JSON with whatever could be measured
            report["errors"][name] = traceback.format_exc(limit=4)
            if device.type == "cuda":
                torch.cuda.empty_cache()  # an out-of-memory section leaves its blocks cached
        report["seconds"][name] = time.perf_counter() - section_start
        print(f"{name}: {report['seconds'][name]:.1f} s" + (" (failed)" if name in report["errors"] else ""),
              file=sys.stderr, flush=True)
        with open(args.out, "w") as out:  # written after every section: a killed run keeps what it had
            json.dump(report, out, indent=2, default=str)
    print(json.dumps(report["results"], indent=2, default=str))
    print(summary(report), flush=True)
    return 0 if not report["errors"] else 1


def summary(report: dict) -> str:
    """One line: the sections that ran, failed and were skipped."""
    failed = [name for name, error in report["errors"].items() if not error.startswith("skipped")]
    skipped = [name for name in report["errors"] if name not in failed]
    return (f"gpu_check summary: {len(report['results'])} passed, {len(failed)} failed"
            + (f" ({', '.join(failed)})" if failed else "") + f", {len(skipped)} skipped"
            + (f" ({', '.join(skipped)})" if skipped else "") + f" on {report['device']}")


if __name__ == "__main__":
    sys.exit(main())
