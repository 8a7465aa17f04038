"""The token cache: all last-layer tokens of a split, streamed to disk through a memory map."""
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ltbench.core.errors import UserError
from ltbench.data.base import ArraySplit
from ltbench.engine import cache as cache_module
from ltbench.engine.cache import ArrayCache, cache_key, format_bytes
from ltbench.engine.context import RunContext
from ltbench.engine.features import image_tokens, token_cache_bytes
from ltbench.models.factory import create_backbone


@dataclass(frozen=True)
class RecordingContext(RunContext):
    """A run context that keeps its log lines."""

    messages: list = field(default_factory=list)

    def log(self, message: str):
        self.messages.append(message)


@pytest.fixture
def context(tmp_path):
    return RecordingContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path, cache=ArrayCache(tmp_path / "c"),
                            progress=False)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return create_backbone("tiny", "cpu")


def make_split(count=10, seed=0, name="train"):
    rng = np.random.default_rng(seed)
    return ArraySplit(name=name, images=rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                      labels=rng.integers(0, 3, count))


def fresh_tokens(encoder, split):
    with torch.no_grad():
        return encoder.encode_tokens(encoder.eval_transform.apply_batch(split.images)).numpy()


def cache_files(ctx):
    """Every file under the cache, temp files (dot-names) included."""
    return sorted(p.name for p in ctx.cache.root.rglob("*") if p.is_file())


def test_cached_tokens_equal_fresh_ones_and_the_size_is_logged(encoder, context):
    split = make_split()
    tokens = image_tokens(encoder, split, context, batch_size=4)
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.float16 and not tokens.flags.writeable
    assert tokens.shape == (10, 17, 64) == (len(split), *encoder.token_shape)
    np.testing.assert_allclose(tokens.astype(np.float32), fresh_tokens(encoder, split), rtol=1e-3, atol=1e-3)
    size = token_cache_bytes(10, 17, 64, "float16")
    assert context.messages == [f"caching tokens of train: 10 x 17 x 64 fp16 = {format_bytes(size)} "
                                f"under {context.cache.root}"]


def test_a_second_call_encodes_nothing(encoder, context, monkeypatch):
    split = make_split()
    first = np.array(image_tokens(encoder, split, context, batch_size=4))

    def refuse(images):
        raise AssertionError("encoded again")

    monkeypatch.setattr(encoder, "encode_tokens", refuse)
    again = image_tokens(encoder, split, context, batch_size=7)  # the batch size is not in the key
    assert np.array_equal(first, again) and len(context.messages) == 1
    with pytest.raises(AssertionError, match="encoded again"):  # another dtype is another entry
        image_tokens(encoder, split, context, batch_size=4, dtype="float32")
    with pytest.raises(AssertionError, match="encoded again"):  # and so are other images
        image_tokens(encoder, make_split(seed=1), context, batch_size=4)


def test_float32_tokens(encoder, context):
    split = make_split(count=3)
    tokens = image_tokens(encoder, split, context, batch_size=2, dtype="fp32")
    assert tokens.dtype == np.float32
    np.testing.assert_allclose(tokens, fresh_tokens(encoder, split), rtol=1e-5, atol=1e-5)
    assert "fp32" in context.messages[0]


def test_the_entry_is_a_valid_npy_with_its_description(encoder, context):
    split = make_split()
    tokens = image_tokens(encoder, split, context, batch_size=4)
    npy = list(context.cache.root.rglob("*.npy"))
    assert len(npy) == 1 and not any(name.startswith(".") for name in cache_files(context))
    loaded = np.load(npy[0], mmap_mode="r")
    assert loaded.shape == tokens.shape and loaded.dtype == np.float16
    assert np.array_equal(loaded, tokens)
    description = json.loads(npy[0].with_suffix(".json").read_text())
    assert description.pop("integrity")["shape"] == list(tokens.shape)  # the checksum record beside the key's inputs
    assert description["kind"] == "image_tokens" and description["dtype"] == "float16"
    assert description["split"] == split.fingerprint and description["precision"] == "fp32"
    assert npy[0] == context.cache.path(cache_key(description))


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_stream_leaves_no_entry_and_no_temp_file(encoder, context, monkeypatch, failure):
    split = make_split()
    original, calls = encoder.encode_tokens, []

    def fail_on_the_second_batch(images):
        calls.append(len(images))
        if len(calls) == 2:
            raise failure("stop")
        return original(images)

    monkeypatch.setattr(encoder, "encode_tokens", fail_on_the_second_batch)
    with pytest.raises(failure):
        image_tokens(encoder, split, context, batch_size=4)
    assert calls == [4, 4] and cache_files(context) == []
    monkeypatch.setattr(encoder, "encode_tokens", original)
    tokens = image_tokens(encoder, split, context, batch_size=4)  # the next run starts afresh
    np.testing.assert_allclose(tokens.astype(np.float32), fresh_tokens(encoder, split), rtol=1e-3, atol=1e-3)


def test_size_helper_arithmetic():
    # ImageNet-LT train through ViT-B/16: 35 GB in float16, twice that in float32.
    assert token_cache_bytes(115_846, 197, 768, "float16") == 115_846 * 197 * 768 * 2 == 35_054_072_832
    assert token_cache_bytes(115_846, 197, 768, np.float32) == 2 * 35_054_072_832
    assert token_cache_bytes(0, 197, 768) == 0
    assert format_bytes(35_054_072_832) == "35.1 GB"
    assert (format_bytes(999), format_bytes(1_500), format_bytes(2_000_000)) == ("999 B", "1.5 kB", "2.0 MB")


def test_bad_dtype_and_encoders_without_tokens(encoder, context):
    with pytest.raises(UserError, match="float16"):
        image_tokens(encoder, make_split(count=2), context, batch_size=2, dtype="int8")
    vision_only = SimpleNamespace(label="timm:resnet18", eval_transform=encoder.eval_transform)
    with pytest.raises(UserError, match="timm:resnet18"):
        image_tokens(vision_only, make_split(count=2), context, batch_size=2)


# ---- ArrayCache.get_or_compute_streaming ----

def test_streaming_writes_once_and_returns_a_read_only_map(tmp_path):
    cache, calls = ArrayCache(tmp_path), []

    def fill(out):
        calls.append(type(out))
        out[:] = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

    first = cache.get_or_compute_streaming({"kind": "s"}, (2, 3, 4), np.float32, fill)
    second = cache.get_or_compute_streaming({"kind": "s"}, (2, 3, 4), "float32", fill)
    assert len(calls) == 1 and issubclass(calls[0], np.memmap) and np.array_equal(first, second)
    assert first[1, 2, 3] == 23
    assert not first.flags.writeable
    # An entry of another shape (or dtype) under the key is not returned.
    other = cache.get_or_compute_streaming({"kind": "s"}, (2, 3), np.float32, lambda out: out.fill(1))
    assert other.shape == (2, 3) and len(calls) == 1


def test_concurrent_writers_of_one_key_each_use_their_own_file(tmp_path):
    cache, description, seen = ArrayCache(tmp_path), {"kind": "race"}, []

    def inner(out):
        out[:] = 7

    def outer(out):
        out[:] = 7
        # Another process fills and publishes the same key while this one is still writing.
        seen.append(cache.get_or_compute_streaming(description, (5,), np.int64, inner))
        assert np.all(out == 7)  # its file was not this one

    result = cache.get_or_compute_streaming(description, (5,), np.int64, outer)
    assert np.array_equal(result, seen[0]) and list(result) == [7] * 5
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    key = cache_key(description)
    assert files == [f"{key}.json", f"{key}.npy", f"{key}.verified"]


def test_not_enough_disk_space_is_a_clear_error(tmp_path, monkeypatch):
    cache = ArrayCache(tmp_path)
    monkeypatch.setattr(cache_module.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=10 ** 9, used=10 ** 9, free=10 ** 6))
    with pytest.raises(UserError, match="not enough disk space for a 4.0 GB cache entry"):
        cache.get_or_compute_streaming({"kind": "big"}, (10 ** 9,), np.float32,
                                       lambda out: pytest.fail("must not start"))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
