"""The config's `deterministic` mode, and the numeric settings a record states (its "numerics").

deterministic: true makes a rerun on the same GPU, software and cache give the same bits:
``torch.use_deterministic_algorithms(True)`` (an op without a deterministic kernel raises, naming
itself, instead of running), cuDNN's deterministic algorithms without autotuning, and cuBLAS with
a fixed workspace (CUBLAS_WORKSPACE_CONFIG=:4096:8: eight 4 MiB buffers). cuBLAS reads that
variable when CUDA starts in the process, so the runner applies the mode before anything touches
CUDA (runner.run, before distributed.setup, which creates the run's CUDA context); a process in
which CUDA already started without it (a sweep whose earlier entries ran on the GPU) is refused
with what to do. Each run applies its own setting: a run with deterministic: false switches the
mode off again. See docs/reliability.md for what the mode does and does not make reproducible.
"""
import os

import torch

from ltbench.core.errors import UserError

CUBLAS_WORKSPACE_CONFIG = ":4096:8"
# The two settings under which cuBLAS is deterministic (NVIDIA's cuBLAS docs, "Results reproducibility").
DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")


def apply_determinism(deterministic) -> None:
    """Set torch, cuDNN and cuBLAS for the run's `deterministic` setting (a bool: the option is
    checked with the rest of the config)."""
    if deterministic:
        if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in DETERMINISTIC_CUBLAS:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                raise UserError("deterministic=true needs CUBLAS_WORKSPACE_CONFIG set before CUDA starts, and CUDA "
                                "already started in this process; export CUBLAS_WORKSPACE_CONFIG=:4096:8 before "
                                "starting ltbench")
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # torch's default; autotuning picks kernels by timing


def numerics() -> dict:
    """The settings that decide how a GPU computes a run's numbers (the record's "numerics")."""
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            # TF32 (10-bit mantissa) where fp32 was asked for: matmuls and convolutions separately.
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}
