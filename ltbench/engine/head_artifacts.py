"""A run's final linear classifier head, saved as an artifact of its record, so that a post-hoc
method (``posthoc_taunorm``) can rescale it later from the run's saved logits alone.

The file, ``<work dir>/linear_head.npz``, holds the effective linear map of the head's last layer:
``weight`` [C, D] and ``bias`` [C] (zeros where it has none), so that logits = weight @ x + bias
for that layer's input x (standardised features, or L2-normalised ones for a cosine head, whose
weight is scale * w_c / ||w_c||). The record names it under ``artifacts["linear_head"]`` and holds
its SHA-256 and shape under ``details["linear_head"]``; reading it back checks the hash, so a
file changed or replaced since the run is refused.
"""
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltbench.core import distributed
from ltbench.core.atomic import atomic_write
from ltbench.core.errors import UserError
from ltbench.models.heads import CosineHead

ARTIFACT = "linear_head"
FORMAT = "ltbench.linear_head/1"


@dataclass(frozen=True)
class LinearHead:
    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    kind: str  # linear | cosine


@torch.no_grad()
def linear_map(head: nn.Module):
    """The LinearHead of a head (its last module, for a Sequential such as standardise + linear),
    or None when the head is not a linear map of its input (DisAlign, LWS, MARC)."""
    if isinstance(head, nn.Sequential):
        head = head[-1]
    if isinstance(head, nn.Linear):
        weight = head.weight.detach().float().cpu().numpy()
        bias = (head.bias.detach().float().cpu().numpy() if head.bias is not None
                else np.zeros(weight.shape[0], dtype=np.float32))
        return LinearHead(weight, bias, "linear")
    if isinstance(head, CosineHead):
        weight = head.scale * torch.nn.functional.normalize(head.weight.detach().float(), dim=-1)
        return LinearHead(weight.cpu().numpy(), np.zeros(weight.shape[0], dtype=np.float32), "cosine")
    return None


def save_linear_head(ctx, head: nn.Module) -> bool:
    """Write ``head``'s linear map as the run's ``linear_head`` artifact (atomically, rank 0 only)
    and record its path and hash; False (nothing written) for a head that is not linear."""
    found = linear_map(head)
    if found is None:
        return False
    buffer = io.BytesIO()
    np.savez(buffer, weight=found.weight, bias=found.bias, kind=np.asarray(found.kind), format=np.asarray(FORMAT))
    data = buffer.getvalue()  # hashed in memory: every process of a DDP run records the same hash
    path = Path(ctx.work_dir) / "linear_head.npz"
    if distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(data))
    ctx.outputs.artifacts[ARTIFACT] = str(path.resolve())
    # Also where it is from the run's results folder (work/<run>/linear_head.npz beside runs/), so
    # that a results folder moved or copied elsewhere still finds it; the hash says it is the file.
    results_dir = Path(ctx.work_dir).resolve().parent.parent
    ctx.outputs.details[ARTIFACT] = {"format": FORMAT, "sha256": hashlib.sha256(data).hexdigest(),
                                     "kind": found.kind, "shape": list(found.weight.shape),
                                     "in_results": path.resolve().relative_to(results_dir).as_posix()}
    return True


def read_linear_head(record: dict, where: str, results_dir=None) -> LinearHead:
    """The linear head a run record (or a method's outputs: a dict with 'method', 'artifacts' and
    'details') names, after checking its file is the one the run wrote. ``where`` names the run in
    errors. ``results_dir``: the results folder the record was read from; the head is looked for
    there first (its place within the folder the run wrote), then at the path the run wrote."""
    path = (record.get("artifacts") or {}).get(ARTIFACT)
    info = (record.get("details") or {}).get(ARTIFACT)
    if not path or not isinstance(info, dict):
        raise UserError(f"{where}: method '{record.get('method')}' saved no linear head (linear_probe and the "
                        "decoder runs with a linear final head save one); tau-normalisation needs it")
    path = Path(path)
    in_results = info.get("in_results")
    if results_dir is not None and isinstance(in_results, str) and (Path(results_dir) / in_results).is_file():
        path = Path(results_dir) / in_results
    if not path.is_file():
        raise UserError(f"{where}: its linear head {path} is missing; rerun that run")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise UserError(f"{where}: its linear head {path} is not the file the run wrote (SHA-256 differs); "
                        "rerun that run")
    with np.load(io.BytesIO(data)) as saved:
        return LinearHead(np.array(saved["weight"]), np.array(saved["bias"]), str(saved["kind"]))
