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


# ---- concurrent writers: several processes computing and storing the same key at once ----

WRITERS = 4
SHARED_DESCRIPTION = {"kind": "image_features", "split": "array:shared", "weights": "w"}


def _expected_array():
    # Large enough (16 MB) that the writers' np.save calls overlap in time.
    return np.arange(4 << 20, dtype=np.float32).reshape(-1, 64)


def _write_shared_key(root, streaming, all_missed, results):
    """One writer process: every writer reaches compute / fill (a miss) before any of them stores."""
    cache = ArrayCache(root)
    expected = _expected_array()

    def compute():
        all_missed.wait(timeout=60)
        return expected

    def fill(out):
        all_missed.wait(timeout=60)
        out[:] = expected

    if streaming:
        array = cache.get_or_compute_streaming(SHARED_DESCRIPTION, expected.shape, expected.dtype, fill)
    else:
        array = cache.get_or_compute(SHARED_DESCRIPTION, compute)
    results.put(bool(np.array_equal(array, expected)))


@pytest.mark.parametrize("streaming", [False, True], ids=["get_or_compute", "streaming"])
def test_concurrent_writers_of_one_key_leave_one_complete_entry(tmp_path, streaming):
    import json
    import multiprocessing

    # fork: the children need only numpy and the cache, and start in milliseconds.
    context = multiprocessing.get_context("fork")
    all_missed, results = context.Barrier(WRITERS), context.Queue()
    writers = [context.Process(target=_write_shared_key, args=(tmp_path, streaming, all_missed, results))
               for _ in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    # The barrier inside compute / fill proves every writer missed and wrote the entry itself.
    assert [results.get(timeout=5) for _ in range(WRITERS)] == [True] * WRITERS

    cache = ArrayCache(tmp_path)
    key = cache_key(SHARED_DESCRIPTION)
    assert np.array_equal(cache.load(key), _expected_array())
    stored = json.loads(cache.path(key).with_suffix(".json").read_text())
    assert stored.pop("integrity")["shape"] == list(_expected_array().shape)  # the entry's checksum record
    assert stored == SHARED_DESCRIPTION
    assert sorted(p.name for p in cache.path(key).parent.iterdir()) == [f"{key}.json", f"{key}.npy", f"{key}.verified"]
