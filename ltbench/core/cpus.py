"""How many CPU cores a process of a run may use, and the loader workers that follow from it.

torchrun starts LOCAL_WORLD_SIZE processes on a machine (one a GPU) that share its cores: the
cores this process may run on (its affinity, which Slurm and containers narrow) divided among
them. One of a process's cores runs the process itself (the training loop, the GPU's kernel
launches); the others decode images.
"""
import os

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
