"""The engine's helpers that return tensors give them on the device the caller asks for (the
run's by default), checked on the simulated device (conftest.py)."""
import numpy as np
import pytest
import torch

from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext

pytestmark = pytest.mark.device_strict


@pytest.fixture
def strict_ctx(simulated_device, tmp_path):
    return RunContext(device=simulated_device.device, seed=0, work_dir=tmp_path / "work",
                      cache=ArrayCache(tmp_path / "cache"), progress=False)


@pytest.fixture
def tiny_clip(simulated_device):
    from ltbench.models.factory import create_backbone

    return create_backbone("tiny", simulated_device.device)


def test_text_classifier_is_on_the_run_device_computed_and_cached(strict_ctx, tiny_clip, simulated_device):
    from ltbench.engine.features import text_classifier

    names, templates = ["cat", "dog", "bird"], ["a photo of a {}.", "a {}."]
    computed = text_classifier(tiny_clip, names, templates, strict_ctx)
    cached = text_classifier(tiny_clip, names, templates, strict_ctx)
    assert simulated_device.is_on_device(computed) and simulated_device.is_on_device(cached)
    assert computed.dtype == torch.float32 and tuple(computed.shape) == (3, tiny_clip.embed_dim)
    host = text_classifier(tiny_clip, names, templates, strict_ctx, device="cpu")
    assert not simulated_device.is_on_device(host)
    assert torch.equal(host, cached.cpu())


def test_features_are_on_the_device_asked_for(strict_ctx, tiny_clip, simulated_device):
    from ltbench.engine.features import encode_split, image_features

    split = _digits().split("val")
    array = image_features(tiny_clip, split, strict_ctx, batch_size=16)
    assert isinstance(array, np.ndarray) and array.shape == (len(split), tiny_clip.embed_dim)
    on_device = image_features(tiny_clip, split, strict_ctx, batch_size=16, device=strict_ctx.device)
    assert simulated_device.is_on_device(on_device) and torch.equal(on_device.cpu(), torch.from_numpy(np.array(array)))
    transform = tiny_clip.eval_transform
    host = encode_split(split, strict_ctx, 16, tiny_clip.encode_images, transform=transform)
    device = encode_split(split, strict_ctx, 16, tiny_clip.encode_images, transform=transform, device=strict_ctx.device)
    assert not simulated_device.is_on_device(host) and simulated_device.is_on_device(device)
    assert torch.equal(host, device.cpu())


def _digits():
    from ltbench.data import build_dataset

    return build_dataset({"name": "digits_lt", "max_per_class": 12, "imbalance_ratio": 3, "test_per_class": 2,
                          "val_per_class": 2})
