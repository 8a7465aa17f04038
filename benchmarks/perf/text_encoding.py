"""How fast ltbench builds zero-shot text classifiers, against open_clip's own loop.

    python benchmarks/perf/text_encoding.py --backbone ViT-B-16:none --sets imagenet:1000:16,inat:8142:16 --threads 1

Each --sets entry is NAME:CLASSES[:SUBSET]: the class names (imagenet: CLIP's 1000 ImageNet
names; inat: synthetic two-word Latin-like names, iNaturalist-sized; synth: "class N"),
how many classes, and optionally how many of them to measure (evenly spaced): on a CPU the
full ViT-B-16 classifier takes long, so a subset is timed and the full time extrapolated
linearly (the cost is linear in the number of prompts; stated in the output as "estimated").

Per set, with the 80 OpenAI ImageNet templates:
- ltbench's ``build_text_classifier`` (prompts sorted by length, the text tower cut at each
  batch's longest prompt where exact) against open_clip's ``build_zero_shot_classifier``
  (10 classes per batch, the full 77-token context), best of --repeats each, taking turns;
  with a subset, a --batch-size below 1024 keeps the batches as fine-grained in length as the
  full set's 1024-prompt batches are;
- the max |difference| of the two normalised classifiers;
- the end-of-text position of the measured prompts (mean, max) and seconds per class.

Random weights: only the speed and the agreement mean something here.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
from tabulate import tabulate

from ltbench.data.prompts import imagenet_clip_classnames, openai_imagenet_templates
from ltbench.models.factory import create_backbone
from ltbench.models.text_classifier import build_text_classifier

SYLLABLES = ["ca", "lo", "mi", "tus", "ra", "phe", "gon", "ul", "ar", "bi", "lis", "ter", "no", "cor",
             "ae", "vi", "dro", "pha", "sce", "lus", "min", "or", "thy", "pte", "rix", "ella"]


def latin_names(count: int, seed: int = 0):
    """`count` distinct 'Genus species' names of 2-4 syllables each (iNaturalist's names are
    binomials; their token lengths are close to these)."""
    rng = np.random.default_rng(seed)
    names, seen = [], set()
    while len(names) < count:
        words = ["".join(rng.choice(SYLLABLES, size=rng.integers(2, 5))) for _ in range(2)]
        name = f"{words[0].capitalize()} {words[1]}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def class_names(kind: str, count: int):
    if kind == "imagenet":
        names = imagenet_clip_classnames()
        if count > len(names):
            raise SystemExit(f"imagenet has {len(names)} names, not {count}")
        return names[:count]
    if kind == "inat":
        return latin_names(count)
    if kind == "synth":
        return [f"class {index}" for index in range(count)]
    raise SystemExit(f"unknown class-name set '{kind}': imagenet, inat or synth")


def parse_sets(text: str):
    sets = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise SystemExit(f"--sets entry '{entry}': NAME:CLASSES[:SUBSET]")
        count = int(parts[1])
        subset = min(count, int(parts[2])) if len(parts) == 3 else count
        sets.append((parts[0], count, subset))
    return sets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="tiny", help="tiny, ViT-B-16:none, RN50:none, ...")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sets", default="imagenet:1000:16,inat:8142:16",
                        help="comma-separated NAME:CLASSES[:SUBSET] (see the module docstring)")
    parser.add_argument("--batch-size", type=int, default=1024, help="ltbench's prompts per batch")
    parser.add_argument("--repeats", type=int, default=2, help="runs per path; the best is reported")
    parser.add_argument("--no-reference", action="store_true", help="skip open_clip's full-context loop")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="OUT", help="also write the numbers to this JSON file")
    return parser.parse_args(argv)


def best_of(repeats: int, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    clip = create_backbone(args.backbone, args.device)
    templates = openai_imagenet_templates()
    print(f"ltbench text-classifier perf: {args.backbone} on {args.device}, {torch.get_num_threads()} threads, "
          f"{len(templates)} templates, best of {args.repeats}")
    rows, results = [], {}
    for kind, count, subset in parse_sets(args.sets):
        names = class_names(kind, count)
        measured = [names[i] for i in np.linspace(0, count - 1, subset).round().astype(int)]
        tokens = clip.tokenize([t.format(name) for name in measured for t in templates])
        positions = tokens.argmax(dim=-1).float()  # the end-of-text token (CLIP's tokenizer)
        ours, theirs = float("inf"), float("inf")
        for _ in range(args.repeats):  # taking turns: load on a shared machine hits both paths alike
            seconds, classifier = best_of(1, lambda: build_text_classifier(clip, measured, templates,
                                                                          args.batch_size))
            ours = min(ours, seconds)
            if not args.no_reference:
                seconds, reference = best_of(1, lambda: build_zero_shot_classifier(
                    clip.model, clip.tokenizer, measured, templates, num_classes_per_batch=10, device=clip.device).T)
                theirs = min(theirs, seconds)
        entry = {"classes": count, "measured_classes": subset, "estimated": subset < count,
                 "eot_mean": float(positions.mean()), "eot_max": int(positions.max()),
                 "ltbench_seconds": ours * count / subset, "ltbench_seconds_per_class": ours / subset}
        if not args.no_reference:
            entry.update(reference_seconds=theirs * count / subset, reference_seconds_per_class=theirs / subset,
                         speedup=theirs / ours, max_abs_difference=float((classifier - reference).abs().max()))
        results[f"{kind}_{count}"] = entry
        estimate = f" (est. from {subset})" if subset < count else ""
        rows.append([f"{kind} {count} classes{estimate}", f"{entry['eot_mean']:.1f} / {entry['eot_max']}",
                     f"{entry['ltbench_seconds']:.1f}", f"{1e3 * entry['ltbench_seconds_per_class']:.1f}",
                     f"{entry['reference_seconds']:.1f}" if "speedup" in entry else "-",
                     f"{entry['speedup']:.2f}x" if "speedup" in entry else "-",
                     f"{entry['max_abs_difference']:.1e}" if "speedup" in entry else "-"])
    print(tabulate(rows, headers=["classifier (x 80 templates)", "EOT pos mean / max", "ltbench s",
                                  "ms / class", "open_clip s", "speed-up", "max |diff|"], tablefmt="github"))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"backbone": args.backbone, "device": args.device, "threads": torch.get_num_threads(),
                       "results": results}, out, indent=2)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
