"""Per-sample predictions: the compact file every run writes beside its record.

``<record>.preds.npz`` next to ``<record>.json`` holds, for the evaluation split and val, what
comparisons, confidence intervals and calibration need (ltbench.metrics.per_sample_summary):
``labels_<split>`` [N] int32, ``top_k_<split>`` [N, 5] int32, ``top_prob_<split>`` [N, 5] float32,
``true_prob_<split>`` [N] float32, ``sq_sum_<split>`` [N] float32 (sum of squared probabilities,
for the Brier score) and ``fingerprint_<split>`` (the split's content hash): 52 bytes an image.
The record's ``per_sample`` names the file (relative to the record's folder), its SHA-256 and the
fingerprint of each split in it. It is written before the record, atomically; ``--save-logits``
still saves full logits on top.
"""
import hashlib
import io
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ltbench.core.atomic import atomic_write
from ltbench.core.errors import UserError

FIELDS = ("labels", "top_k", "top_prob", "true_prob", "sq_sum")


def per_sample_file_for(record_path: Path) -> Path:
    return Path(record_path).with_suffix(".preds.npz")


def save_per_sample(path: Path, summaries: Dict[str, Tuple[dict, str]]) -> dict:
    """Write {split name: (per_sample_summary, fingerprint)} atomically; returns the record's
    ``per_sample`` entry: {'path': file name, 'sha256', 'fingerprints': {split: fingerprint}}."""
    arrays = {}
    for split, (summary, fingerprint) in summaries.items():
        for field in FIELDS:
            arrays[f"{field}_{split}"] = summary[field]
        arrays[f"fingerprint_{split}"] = np.asarray(fingerprint)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write(path, lambda handle: handle.write(data))
    return {"path": Path(path).name, "sha256": hashlib.sha256(data).hexdigest(),
            "fingerprints": {split: fingerprint for split, (_, fingerprint) in summaries.items()}}


def load_per_sample(record_path, record: dict, split: str = None) -> Dict[str, np.ndarray]:
    """The per-sample arrays of one split of a run (default: its eval split), with 'fingerprint'.

    One-line UserErrors, naming the record and the file: no per-sample file in the record (a run
    from before they existed), the file missing, its SHA-256 not the one recorded, no such split
    in it, or its fingerprint not the record's.
    """
    record_path = Path(record_path)
    split = split or record["eval_split"]
    entry = record.get("per_sample")
    if not entry:
        raise UserError(f"{record_path}: this run has no per-sample predictions (it predates them); rerun it")
    path = record_path.parent / entry["path"]
    if not path.is_file():
        raise UserError(f"{record_path}: its per-sample file {path} is missing")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise UserError(f"{record_path}: its per-sample file {path} has SHA-256 {digest[:12]}..., the record "
                        f"names {entry['sha256'][:12]}... (the file was replaced or changed)")
    with np.load(io.BytesIO(data)) as saved:
        if f"labels_{split}" not in saved:
            raise UserError(f"{record_path}: its per-sample file {path} has no '{split}' split")
        arrays = {field: np.array(saved[f"{field}_{split}"]) for field in FIELDS}
        fingerprint = str(saved[f"fingerprint_{split}"])
    expected = (entry.get("fingerprints") or {}).get(split)
    if expected is not None and fingerprint != expected:
        raise UserError(f"{record_path}: its per-sample file {path} is of another {split} split (content hash "
                        f"{fingerprint[:12]}..., the record names {expected[:12]}...)")
    return {**arrays, "fingerprint": fingerprint}
