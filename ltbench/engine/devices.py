"""What a record states about the hardware a run used (its "devices" field): on CUDA the GPU
model and count, memory, compute capability, NVIDIA driver, CUDA and cuDNN versions; on the CPU
the CPU model and the threads torch used. Rank 0's GPU under torchrun (one GPU per process)."""
import os
import platform
import subprocess
from typing import Optional

import torch

from ltbench.core import distributed

NVIDIA_SMI_TIMEOUT_S = 5


def nvidia_driver_version() -> Optional[str]:
    """The NVIDIA driver's version ('550.54.15'), from NVML or nvidia-smi; None when neither answers."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no pynvml, or NVML cannot start: ask nvidia-smi
        pass
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    return lines[0].strip() if result.returncode == 0 and lines else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_facts(device: torch.device) -> dict:
    """The run's devices, as the record's "devices" field holds them."""
    processes = distributed.get_world_size()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return {"type": "cuda", "name": properties.name, "count": processes,
                "visible": torch.cuda.device_count(), "memory_bytes": int(properties.total_memory),
                "capability": f"{properties.major}.{properties.minor}", "driver": nvidia_driver_version(),
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "processes": processes}
    return {"type": "cpu", "name": cpu_model(), "count": 1, "threads": torch.get_num_threads(),
            "cores": os.cpu_count(), "processes": processes}
