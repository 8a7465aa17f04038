"""CPU threads of a run's process (``runtime.cpu_threads``).

torchrun sets OMP_NUM_THREADS=1 in every process it starts (unless it was set), so torch's CPU
work (metrics, the per-sample softmax, CPU matrix products of a CPU run) runs on one core a
process even where each process has several. ``null`` gives each process the cores it may run
on (its CPU affinity) divided by the processes torchrun started on this machine, at least one;
a single process keeps torch's own default (every core). A number sets it.
"""
import os
from typing import Optional

import torch

from ltbench.core.errors import UserError
from ltbench.core.values import is_whole


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_threads(setting, local_processes: Optional[int] = None) -> Optional[int]:
    """The thread count for runtime.cpu_threads = `setting` (None: leave torch's default)."""
    if setting is not None and not (is_whole(setting) and setting >= 1):
        raise UserError(f"runtime.cpu_threads={setting!r} must be a whole number >= 1, or null (the cores "
                        "this process may use, shared among the processes torchrun started on this machine)")
    if setting is not None:
        return int(setting)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if local_processes is None else local_processes
    if local <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return None  # a plain process: torch already uses every core (or what OMP_NUM_THREADS says)
    return max(1, available_cores() // max(1, local))


def set_cpu_threads(setting) -> Optional[int]:
    """Apply cpu_threads(setting) to torch; returns the count set (None: unchanged)."""
    threads = cpu_threads(setting)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
