"""How many CPU cores a process of a run may use, and the loader workers and torch threads that
follow from it.

torchrun starts LOCAL_WORLD_SIZE processes on a machine (one a GPU) that share its cores: the
cores this process may run on (its affinity, which Slurm and containers narrow) divided among
them. One of a process's cores runs the process itself (the training loop, the GPU's kernel
launches); the others decode images.
"""
import os
from typing import Optional

# More workers than this rarely decode faster (a batch needs about as many images as there are
# workers in flight) and each holds its own copy of the dataset object and prefetched batches.
MAX_LOADER_WORKERS = 16
AUTO = "auto"


def cores_per_process() -> int:
    """This process's share of the cores it may run on (>= 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity
        cores = os.cpu_count() or 1
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores // local_processes)


def loader_workers(setting) -> int:
    """runtime.num_workers: a number as given, or 'auto': this process's cores less one, at most
    MAX_LOADER_WORKERS (1 core: 0 workers, the process decodes itself)."""
    if setting == AUTO:
        return max(0, min(MAX_LOADER_WORKERS, cores_per_process() - 1))
    return int(setting)


def cpu_threads(setting) -> Optional[int]:
    """runtime.cpu_threads: torch's CPU threads in this process (None: leave torch's default).

    torchrun sets OMP_NUM_THREADS=1 in every process it starts (unless it was set), so torch's CPU
    work (metrics, the per-sample softmax, a CPU run's matrix products) would run on one core a
    process even where each has several. null: under torchrun, this process's share of the cores
    (cores_per_process); a single process keeps torch's own default. A number sets it.
    """
    from ltbench.core.errors import UserError
    if setting is not None and not (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1):
        raise UserError(f"runtime.cpu_threads={setting!r} must be a whole number >= 1, or null (under torchrun: "
                        "the cores this process may use, shared among the processes on this machine)")
    if setting is not None:
        return int(setting)
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return None  # a plain process: torch already uses every core (or what OMP_NUM_THREADS says)
    return cores_per_process()


def set_cpu_threads(setting) -> Optional[int]:
    """Apply cpu_threads(setting) to torch; returns the count set (None: unchanged)."""
    import torch

    threads = cpu_threads(setting)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
