"""Content hashes of model weights, so caches follow the weights and never a name alone."""
import hashlib
from typing import Callable

import torch


def state_dict_sha256(module: torch.nn.Module, include: Callable[[str], bool] = lambda name: True,
                      salt: str = "") -> str:
    """SHA-256 of the tensors ``include`` keeps; ``salt`` names what else decides the module's
    outputs (the activation a CLIP tower is built with), so that one set of weights built two
    ways gets two hashes."""
    digest = hashlib.sha256()
    if salt:
        digest.update(f"salt:{salt}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        if not include(name):
            continue
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype}".encode())
        # Flattened first: a 0-d tensor of a wider type (BatchNorm's num_batches_tracked) cannot
        # be viewed as bytes; the bytes of every other tensor are the same either way.
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


class MemoizedFingerprint:
    """A weights hash recomputed only after some parameter changed in place.

    Every in-place update (optimizer steps, load_state_dict) bumps a tensor's version counter,
    so the tuple of version counters tells whether the cached hash is stale.
    """

    def __init__(self, module: torch.nn.Module, include: Callable[[str], bool] = lambda name: True,
                 salt: str = ""):
        self.module, self.include, self.salt = module, include, salt
        self._versions, self._value = None, None

    def __call__(self) -> str:
        versions = tuple((name, tensor._version, tensor.data_ptr())
                         for name, tensor in self.module.state_dict().items() if self.include(name))
        if versions != self._versions:
            self._value = state_dict_sha256(self.module, self.include, self.salt)
            self._versions = versions
        return self._value
