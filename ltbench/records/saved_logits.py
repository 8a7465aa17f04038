"""Test (and val) logits saved beside a run record, so finished runs can be ensembled or compared
sample by sample later (``ltbench run --save-logits [FORMAT]``).

The file is ``<record>.logits.npz`` next to ``<record>.json``; the record's ``logits_path`` holds
its name, relative to the record's folder, so a results folder can be moved. For each evaluated
split it stores ``labels_<split>`` and ``fingerprint_<split>`` (the split's content hash: a later
run checks it evaluates the same images in the same order) and, by FORMAT:

- ``float32`` (the default; ``--save-logits`` alone): ``logits_<split>`` [N, C] as the method
  returned them;
- ``float16``: ``logits_<split>`` [N, C] rounded to float16, half the size: each logit to 11
  significant bits (relative error at most 2^-11, 0.05 %, for |z| >= 6.1e-5; below that, where
  float16 is subnormal, an absolute error of at most 2^-25), so a prediction can change where an
  image's two highest logits are closer than that. Read back as float32. A split with a logit
  beyond float16's range (65504) is kept in float32;
- ``topK`` (``top5``, ``top100``, ...): only ``top_classes_<split>`` [N, K] int32 (the K highest
  logits' classes, highest first, ties by class index), ``top_logits_<split>`` [N, K] float32 and
  ``true_logit_<split>`` [N] float32: about (8K + 12) bytes an image instead of 4C. Enough to
  see what each image was confused with; ensembles and post-hoc adjustments need every class's
  logit and refuse such a file in one line.

A split whose images and logits are those of a split already in the file (iNaturalist's and
CIFAR-LT's val is their test split) is stored once: ``same_as_<split>`` names the split it is.
``format`` holds float32, float16 or topK.
"""
import json
import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ltbench.core.atomic import atomic_write
from ltbench.core.chunks import row_chunks
from ltbench.core.errors import UserError

FORMATS = ("float32", "float16", "topK")
FLOAT16_MAX = float(np.finfo(np.float16).max)


def logits_file_for(record_path: Path) -> Path:
    return Path(record_path).with_suffix(".logits.npz")


def logits_format(value) -> Optional[str]:
    """runtime.save_logits as a format name: None (false: no file), 'float32' (true), 'float16' or
    'topK'; anything else is a one-line UserError, raised before any work."""
    if value is False or value is None:
        return None
    if value is True:
        return "float32"
    if isinstance(value, str) and (value in ("float32", "float16") or _top_k(value)):
        return value
    raise UserError(f"--save-logits {value!r}: give float32 (all logits, the default), float16 (half the size, "
                    "rounded) or topK, e.g. top10 (the K highest logits and the true class's of each image)")


def _top_k(name: str) -> Optional[int]:
    match = re.fullmatch(r"top([1-9][0-9]*)", name)
    return int(match.group(1)) if match else None


def top_logits(logits: np.ndarray, labels: np.ndarray, k: int) -> Dict[str, np.ndarray]:
    """The K highest logits of each row (classes highest first, ties by class index) and the true
    class's logit, a chunk of rows at a time."""
    n, num_classes = logits.shape
    k = min(k, num_classes)
    classes = np.empty((n, k), dtype=np.int32)
    values = np.empty((n, k), dtype=np.float32)
    for rows in row_chunks(n, num_classes):
        block = np.asarray(logits[rows], dtype=np.float32)
        candidates = np.argpartition(-block, kth=k - 1, axis=1)[:, :k] if k < num_classes else \
            np.broadcast_to(np.arange(num_classes), block.shape)
        chosen_values = np.take_along_axis(block, candidates, axis=1)
        order = np.lexsort((candidates, -chosen_values), axis=-1)
        chosen = np.take_along_axis(candidates, order, axis=1)
        # Ties at the K-th place that argpartition broke otherwise than by class index: sort in full.
        kth = np.take_along_axis(block, chosen[:, -1:], axis=1)
        for row in np.flatnonzero((block == kth).sum(axis=1) > 1):
            chosen[row] = np.argsort(-block[row], kind="stable")[:k]
        classes[rows] = chosen
        values[rows] = np.take_along_axis(block, chosen, axis=1)
    true_logit = np.asarray(logits[np.arange(n), np.asarray(labels, dtype=np.int64)], dtype=np.float32)
    return {"top_classes": classes, "top_logits": values, "true_logit": true_logit}


def _full(logits: np.ndarray, fmt: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)
    if fmt == "float16" and np.all(np.abs(logits) <= FLOAT16_MAX):  # NaN fails too: kept as it is
        return logits.astype(np.float16)
    return logits


def save_logits(path: Path, evaluated: Dict[str, Tuple[np.ndarray, object]], fmt: str = "float32") -> None:
    """Write {split name: (logits, split)} atomically (temp file + rename) in format `fmt`."""
    fmt = logits_format(fmt) or "float32"
    arrays = {"format": np.asarray(fmt)}
    written = []  # (logits object, fingerprint, name) of the splits stored so far
    for name, (logits, split) in evaluated.items():
        arrays[f"labels_{name}"] = labels = np.asarray(split.labels, dtype=np.int64)
        arrays[f"fingerprint_{name}"] = np.asarray(split.fingerprint)
        same = next((other for stored, fingerprint, other in written
                     if stored is logits and fingerprint == split.fingerprint), None)
        if same is not None:
            arrays[f"same_as_{name}"] = np.asarray(same)
            continue
        written.append((logits, split.fingerprint, name))
        if _top_k(fmt):
            for field, value in top_logits(np.asarray(logits), labels, _top_k(fmt)).items():
                arrays[f"{field}_{name}"] = value
        else:
            arrays[f"logits_{name}"] = _full(logits, fmt)
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


class SavedRun:
    """A finished run read back: its record and the logits it saved."""

    def __init__(self, record_path):
        self.record_path = Path(record_path).expanduser()
        if not self.record_path.is_file():
            raise UserError(f"run record not found: {self.record_path}; give the .json a finished "
                            "`ltbench run --save-logits` wrote under results/runs/")
        try:
            self.record = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UserError(f"{self.record_path}: not a readable run record ({error})") from None
        if not isinstance(self.record, dict) or "method" not in self.record:
            raise UserError(f"{self.record_path}: not a run record (no 'method')")
        if not self.record.get("logits_path"):
            raise UserError(f"{self.record_path}: this run saved no logits; rerun it with --save-logits")
        self.logits_path = self.record_path.parent / self.record["logits_path"]
        if not self.logits_path.is_file():
            raise UserError(f"{self.record_path}: its logits file {self.logits_path} is missing; rerun it "
                            "with --save-logits")

    @property
    def label(self) -> str:
        return f"{self.record['method']}({self.record.get('backbone', '?')})"

    @property
    def format(self) -> str:
        """float32, float16 or topK (files from before the formats: float32)."""
        with np.load(self.logits_path) as saved:
            return str(saved["format"]) if "format" in saved.files else "float32"

    def require_every_class(self, needed_by: str) -> None:
        """A one-line UserError, before any work, where the file keeps only each image's top logits."""
        fmt = self.format
        if _top_k(fmt):
            raise UserError(f"{self.record_path}: its logits were saved as {fmt} (each image's {_top_k(fmt)} "
                            f"highest logits), but {needed_by} needs every class's logit; rerun it with "
                            "--save-logits (float32) or --save-logits float16")

    def logits(self, split) -> np.ndarray:
        """The saved logits of ``split`` as float32, after checking they are of the same images in
        the same order."""
        with np.load(self.logits_path) as saved:
            name = split.name
            if f"labels_{name}" not in saved.files:
                available = sorted(key[len("labels_"):] for key in saved.files if key.startswith("labels_"))
                raise UserError(f"{self.record_path}: no saved logits for the {name} split (it has: "
                                f"{', '.join(available)}); rerun it with eval_val true, or fix the ensemble weights")
            if str(saved[f"fingerprint_{name}"]) != split.fingerprint:
                raise UserError(f"{self.record_path}: its {name} logits are of other images than this "
                                f"run's {name} split (the split file or dataset options differ)")
            stored = str(saved[f"same_as_{name}"]) if f"same_as_{name}" in saved.files else name
            if f"logits_{stored}" not in saved.files:
                self.require_every_class("reading them as logits")
            return np.array(saved[f"logits_{stored}"], dtype=np.float32)
