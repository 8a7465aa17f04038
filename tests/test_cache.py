import numpy as np
import pytest
import torch

from ltbench.data import build_dataset
from ltbench.engine import features as features_module
from ltbench.engine.cache import ArrayCache, cache_key
from ltbench.engine.context import RunContext
from ltbench.models.factory import create_backbone


def test_cache_computes_once_per_description(tmp_path):
    cache, calls = ArrayCache(tmp_path), []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    first = cache.get_or_compute({"kind": "x", "v": 1}, compute)
    second = cache.get_or_compute({"v": 1, "kind": "x"}, compute)  # key order does not matter
    third = cache.get_or_compute({"kind": "x", "v": 2}, compute)
    assert len(calls) == 2 and np.array_equal(first, second) and np.array_equal(first, third)
    assert not list(cache.path(cache_key({"kind": "x", "v": 1})).parent.glob(".*"))  # no temp files left


def test_a_truncated_entry_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path)
    description = {"kind": "y"}
    path = cache.path(cache_key(description))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY garbage")
    assert cache.get_or_compute(description, lambda: np.ones(3)).sum() == 3


@pytest.fixture
def context(tmp_path):
    return RunContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path, cache=ArrayCache(tmp_path / "cache"),
                      progress=False)


def test_image_features_keyed_by_weights_transform_and_split(context, monkeypatch):
    data = build_dataset({"name": "digits_lt"})
    torch.manual_seed(0)
    encoder = create_backbone("tiny")
    calls = []
    original = features_module.extract_image_features
    monkeypatch.setattr(features_module, "extract_image_features",
                        lambda *args, **kwargs: calls.append(args[1].name) or original(*args, **kwargs))

    train = features_module.image_features(encoder, data.split("train"), context, batch_size=64)
    again = features_module.image_features(encoder, data.split("train"), context, batch_size=128)
    assert calls == ["train"] and np.array_equal(train, again)  # batch size does not change features

    features_module.image_features(encoder, data.split("test"), context, batch_size=64)
    other_split = build_dataset({"name": "digits_lt", "seed": 1}).split("train")
    features_module.image_features(encoder, other_split, context, batch_size=64)
    with torch.no_grad():
        encoder.model.visual.proj.mul_(2.0)  # "fine-tuned": must not reuse the old features
    features_module.image_features(encoder, data.split("train"), context, batch_size=64)
    assert calls == ["train", "test", "train", "train"]
    assert train.shape == (len(data.split("train")), encoder.embed_dim)
