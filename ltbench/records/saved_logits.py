"""Test (and val) logits saved beside a run record, so finished runs can be ensembled or compared
sample by sample later (``ltbench run --save-logits``).

The file is ``<record>.logits.npz`` next to ``<record>.json``; the record's ``logits_path`` holds
its name, relative to the record's folder, so a results folder can be moved. For each evaluated
split it stores ``logits_<split>`` [N, C] float32, ``labels_<split>`` and ``fingerprint_<split>``
(the split's content hash: a later run checks it evaluates the same images in the same order).
"""
import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ltbench.core.atomic import atomic_write
from ltbench.core.errors import UserError


def logits_file_for(record_path: Path) -> Path:
    return Path(record_path).with_suffix(".logits.npz")


def save_logits(path: Path, evaluated: Dict[str, Tuple[np.ndarray, object]]) -> None:
    """Write {split name: (logits, split)} atomically (temp file + rename)."""
    arrays = {}
    for name, (logits, split) in evaluated.items():
        arrays[f"logits_{name}"] = np.asarray(logits, dtype=np.float32)
        arrays[f"labels_{name}"] = np.asarray(split.labels, dtype=np.int64)
        arrays[f"fingerprint_{name}"] = np.asarray(split.fingerprint)
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

    def logits(self, split) -> np.ndarray:
        """The saved logits of ``split``, after checking they are of the same images in the same order."""
        with np.load(self.logits_path) as saved:
            key = f"logits_{split.name}"
            if key not in saved:
                available = sorted(name[len("logits_"):] for name in saved.files if name.startswith("logits_"))
                raise UserError(f"{self.record_path}: no saved logits for the {split.name} split (it has: "
                                f"{', '.join(available)}); rerun it with eval_val true, or fix the ensemble weights")
            if str(saved[f"fingerprint_{split.name}"]) != split.fingerprint:
                raise UserError(f"{self.record_path}: its {split.name} logits are of other images than this "
                                f"run's {split.name} split (the split file or dataset options differ)")
            return np.array(saved[key])
