"""What a record states about each timed stage besides its seconds: the precision it computed in
and its peak device and host memory.

Stages are RunContext.timer phases and nest (``fit`` holds BALLAD's ``phase_a``). Peaks are
reset when a stage starts, so each stage reports its own; an enclosing stage takes in the peaks
of the stages inside it, read before they reset the counters. Device memory is
``torch.cuda.max_memory_allocated`` of the run's device (None on the CPU); host memory is the
process's peak resident set (Linux: VmHWM, reset per stage through /proc/self/clear_refs;
elsewhere the peak since the process started). Under torchrun each process measures its own;
the record holds rank 0's. The stack is per process, as the counters are.
"""
import re
import resource
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

BF16, FP32 = "bf16", "fp32"


@dataclass(eq=False)  # stages are told apart by identity
class OpenStage:
    device: torch.device
    peak_device: Optional[int] = None
    peak_host: int = 0
    bf16: bool = False


_open: List[OpenStage] = []


def _cuda_in_use(device: torch.device) -> bool:
    # Not before CUDA starts: reading or resetting the counters would create a context early.
    return device.type == "cuda" and torch.cuda.is_initialized()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it counts that work."""
    if _cuda_in_use(device):
        torch.cuda.synchronize(device)


def device_peak(device: torch.device) -> Optional[int]:
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device)) if _cuda_in_use(device) else 0


def _reset_device_peak(device: torch.device) -> None:
    if _cuda_in_use(device):
        torch.cuda.reset_peak_memory_stats(device)


def host_peak() -> int:
    """The process's peak resident set in bytes (since the last reset where one is possible)."""
    try:
        with open("/proc/self/status") as status:
            match = re.search(r"^VmHWM:\s+(\d+)\s+kB", status.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, kB elsewhere


def _reset_host_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
    except OSError:
        pass


def _max(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return b if a is None else a if b is None else max(a, b)


def _take_in_current_peaks() -> None:
    """The open innermost stage keeps what the counters hold now, before they reset."""
    if _open:
        stage = _open[-1]
        stage.peak_device = _max(stage.peak_device, device_peak(stage.device))
        stage.peak_host = max(stage.peak_host, host_peak())


def enter(device: torch.device) -> OpenStage:
    synchronize(device)
    _take_in_current_peaks()
    _reset_device_peak(device)
    _reset_host_peak()
    stage = OpenStage(device)
    _open.append(stage)
    return stage


def leave(stage: OpenStage, phase: str, stages: Dict[str, dict]) -> None:
    """Close `stage` and merge what it measured into ``stages[phase]`` (a phase timed twice keeps
    the larger peaks, and bf16 if either time used it)."""
    stage.peak_device = _max(stage.peak_device, device_peak(stage.device))
    stage.peak_host = max(stage.peak_host, host_peak())
    index = next((i for i, open_stage in enumerate(_open) if open_stage is stage), None)
    if index is not None:  # the innermost one, unless an exception left stages out of order
        del _open[index:]
    if _open:  # the enclosing stage includes this one
        outer = _open[-1]
        outer.peak_device = _max(outer.peak_device, stage.peak_device)
        outer.peak_host = max(outer.peak_host, stage.peak_host)
        outer.bf16 = outer.bf16 or stage.bf16
    entry = stages.setdefault(phase, {"precision": FP32, "peak_device_bytes": None, "peak_host_bytes": 0})
    if stage.bf16:
        entry["precision"] = BF16
    entry["peak_device_bytes"] = _max(entry["peak_device_bytes"], stage.peak_device)
    entry["peak_host_bytes"] = max(entry["peak_host_bytes"], stage.peak_host)


def note_bf16() -> None:
    """The open stages compute (in part) under bf16 autocast: called by RunContext.autocast."""
    for stage in _open:
        stage.bf16 = True
