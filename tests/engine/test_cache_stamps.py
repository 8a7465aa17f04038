"""A streamed cache entry is hashed while it is written (no second pass over the file), and its
writer's stamp lets other processes and later runs read it without hashing it again, while a
changed file is still verified before use (finding 3 of issue 22)."""
import hashlib
import json
import os

import numpy as np
import pytest

from ltbench.engine import cache as cache_module
from ltbench.engine.cache import ArrayCache, cache_key, integrity_of

DESCRIPTION = {"kind": "image_tokens", "split": "s"}
SHAPE = (40, 6, 8)  # 40 rows of 192 bytes (float32)


def _tokens():
    return (np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) / 7).astype(np.float32)


def _fill_in_batches(out, batch=8):
    data = _tokens()
    for start in range(0, len(data), batch):
        out[start: start + batch] = data[start: start + batch]


@pytest.fixture
def hashed_bytes(monkeypatch):
    """The number of data bytes any BLAKE2b digest was fed (its chunks' 32-byte digests aside)."""
    count = [0]
    real = hashlib.blake2b

    class Counting:
        def __init__(self, *args, **kwargs):
            self.inner = real(*args, **kwargs)

        def update(self, data):
            if not isinstance(data, bytes):
                count[0] += memoryview(data).nbytes
            self.inner.update(data)

        def digest(self):
            return self.inner.digest()

        def hexdigest(self):
            return self.inner.hexdigest()

    monkeypatch.setattr(hashlib, "blake2b", Counting)
    return count


def test_a_streamed_entry_is_hashed_once_while_written_and_never_by_its_readers(tmp_path, hashed_bytes):
    cache = ArrayCache(tmp_path)
    cache_module._VERIFIED.clear()
    written = cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, _fill_in_batches)
    size = _tokens().nbytes
    assert hashed_bytes[0] == size  # the rows as fill wrote them: not the file again
    for _ in range(2):  # another process of the job, then a later run
        cache_module._VERIFIED.clear()
        again = cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, lambda out: pytest.fail("recomputed"))
        assert np.array_equal(again, written)
    assert hashed_bytes[0] == size
    stored = json.loads(cache.path(cache_key(DESCRIPTION)).with_suffix(".json").read_text())["integrity"]
    assert stored["blake2b"] == integrity_of(_tokens())["blake2b"]  # the digest of what the file holds


def test_a_changed_entry_is_verified_before_use(tmp_path, capsys):
    cache = ArrayCache(tmp_path)
    cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, _fill_in_batches)
    path = cache.path(cache_key(DESCRIPTION))
    before = path.stat()
    with open(path, "r+b") as handle:  # one value changed in place, its mtime put back
        handle.seek(-4, os.SEEK_END)
        handle.write(np.float32(1e6).tobytes())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    cache_module._VERIFIED.clear()
    computed = []
    result = cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32,
                                            lambda out: computed.append(1) or _fill_in_batches(out))
    assert computed == [1] and np.array_equal(result, _tokens())
    assert "content does not match its checksum" in capsys.readouterr().err


def test_an_entry_without_a_stamp_is_verified_then_stamped(tmp_path, hashed_bytes):
    cache = ArrayCache(tmp_path)
    cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, _fill_in_batches)
    cache_module.stamp_path(cache.path(cache_key(DESCRIPTION))).unlink()  # a copied cache, an older ltbench
    for _ in range(3):
        cache_module._VERIFIED.clear()
        cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, lambda out: pytest.fail("recomputed"))
    assert hashed_bytes[0] == 2 * _tokens().nbytes  # once while written, once by the first reader


def test_an_entry_of_the_former_whole_file_digest_still_verifies(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.save(cache_key(DESCRIPTION), _tokens(), DESCRIPTION)
    path = cache.path(cache_key(DESCRIPTION))
    stored = json.loads(path.with_suffix(".json").read_text())
    digest = hashlib.blake2b(_tokens().tobytes(), digest_size=32).hexdigest()
    stored["integrity"] = {key: value for key, value in stored["integrity"].items()
                           if key not in ("scheme", "chunk_rows")} | {"blake2b": digest}
    path.with_suffix(".json").write_text(json.dumps(stored))
    cache_module.stamp_path(path).unlink()
    cache_module._VERIFIED.clear()
    assert np.array_equal(cache.load(cache_key(DESCRIPTION)), _tokens())


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rows_written_in_any_order_give_the_digest_of_the_array(monkeypatch, world, hashed_bytes):
    """A distributed extraction writes every process's block in order, the blocks interleaved."""
    from ltbench.engine.cache import StreamingIntegrity

    monkeypatch.setattr(cache_module, "_CHUNK_BYTES", 5 * 192)  # 5 rows a chunk: blocks straddle chunks
    data = _tokens()
    tracker = StreamingIntegrity(SHAPE, np.float32)
    block = -(-len(data) // world)
    for start in range(0, block, 4):  # batches of 4 rows, each process's batch in turn
        for owner in range(world):
            first = owner * block + start
            rows = data[first: min(first + 4, owner * block + block, len(data))]
            if len(rows):
                tracker.rows_written(first, rows)
    record = tracker.finish(data)
    by_the_stream = hashed_bytes[0]
    assert record == integrity_of(data, 5)
    # Only the chunks that straddle two blocks are read back; the rest was hashed as it arrived.
    straddling = sum(1 for owner in range(1, world) if (owner * block) % 5)
    assert data.nbytes <= by_the_stream <= data.nbytes + straddling * 5 * 192
    assert sum(tracker._broken) == straddling


def test_writes_the_stream_cannot_follow_are_hashed_from_the_file(tmp_path):
    cache = ArrayCache(tmp_path)

    def fill(out):
        out.fill(0)
        out[3][1] = 5  # through a view
        np.copyto(out[10:], 2)

    result = cache.get_or_compute_streaming(DESCRIPTION, SHAPE, np.float32, fill)
    stored = json.loads(cache.path(cache_key(DESCRIPTION)).with_suffix(".json").read_text())["integrity"]
    assert stored["blake2b"] == integrity_of(np.array(result))["blake2b"]
