"""The torch / torchvision releases ltbench's code paths need, checked before a run does any work.

pyproject.toml sets the same floors (its comments give the sources); an environment that
installs ltbench without pip's resolver (an editable install beside an older torch, a cluster
module) still gets one clear line instead of a TypeError in the middle of a run.
"""
from ltbench.core.errors import UserError

# Fused SGD / AdamW kernels on both the CPU and CUDA (engine/trainer.py optimizer_implementation):
# fused SGD came to CUDA in torch 2.3, fused SGD / Adam / AdamW to the CPU in 2.4.
MINIMUM_TORCH = "2.4"
# Batched decode_jpeg(list_of_tensors, device="cuda") (data/jpeg_decode.py, gpu_jpeg): 0.20.
MINIMUM_TORCHVISION = "0.20"


def version_problems(torch_version: str, torchvision_version: str) -> list:
    """'torch 2.3.1 (ltbench needs >= 2.4: ...)' for each release below its floor."""
    from torch.torch_version import TorchVersion

    problems = []
    if TorchVersion(torch_version) < MINIMUM_TORCH:
        problems.append(f"torch {torch_version} (ltbench needs >= {MINIMUM_TORCH}: fused SGD / AdamW on the CPU and CUDA)")
    if TorchVersion(torchvision_version) < MINIMUM_TORCHVISION:
        problems.append(f"torchvision {torchvision_version} (ltbench needs >= {MINIMUM_TORCHVISION}: batched "
                        "decode_jpeg on CUDA for gpu_jpeg)")
    return problems


def require_versions():
    """A UserError naming every installed release below ltbench's floor, and how to upgrade."""
    import torch
    import torchvision

    problems = version_problems(str(torch.__version__), str(torchvision.__version__))
    if problems:
        raise UserError(f"this environment has {' and '.join(problems)}; upgrade with "
                        f"pip install 'torch>={MINIMUM_TORCH}' 'torchvision>={MINIMUM_TORCHVISION}' "
                        "(matching builds for your CUDA)")
