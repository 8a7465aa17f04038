"""Cache entries carry a checksum and are verified on read (issue 13, item 2): a bad entry is
reported in one line and recomputed, a non-finite array is never cached, `cache verify` checks all."""
import json
from pathlib import Path

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.engine import cache as cache_module
from ltbench.engine.cache import ArrayCache, cache_key

DESCRIPTION = {"kind": "image_features", "weights": "w", "split": "s"}


def _array():
    return np.arange(60, dtype=np.float32).reshape(12, 5) / 7


def _fresh(tmp_path):
    cache_module._VERIFIED.clear()  # a new process: nothing verified yet
    return ArrayCache(tmp_path / "cache")


def _garbage(path):  # a valid .npy header, random bytes after it
    data = bytearray(path.read_bytes())
    data[-80:] = np.random.default_rng(0).integers(0, 256, 80, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _nan(path):  # same header, NaN values
    array = np.load(path)
    array[3, 2] = np.nan
    np.save(path, array)


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    path.write_bytes(path.read_bytes()[:100])


def _wrong_shape(path):
    np.save(path, np.zeros((3, 4), dtype=np.float32))


def _no_checksum(path):  # an entry of an older ltbench: the description without its integrity record
    json_path = path.with_suffix(".json")
    stored = json.loads(json_path.read_text())
    stored.pop("integrity")
    json_path.write_text(json.dumps(stored))


def _text(path):
    path.write_text("not an array at all\n")


CORRUPTIONS = [_garbage, _nan, _empty, _truncated, _wrong_shape, _no_checksum, _text]


def test_an_entry_stores_shape_dtype_and_checksum(tmp_path):
    cache = _fresh(tmp_path)
    cache.get_or_compute(DESCRIPTION, _array)
    stored = json.loads(cache.path(cache_key(DESCRIPTION)).with_suffix(".json").read_text())
    integrity = stored.pop("integrity")
    assert stored == DESCRIPTION
    assert integrity["shape"] == [12, 5] and integrity["dtype"] == "<f4" and integrity["bytes"] == 240
    assert len(integrity["blake2b"]) == 64
    cache_module._VERIFIED.clear()
    assert np.array_equal(cache.get_or_compute(DESCRIPTION, lambda: pytest.fail("recomputed")), _array())


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_a_bad_entry_is_reported_in_one_line_and_recomputed(tmp_path, capsys, corrupt):
    cache = _fresh(tmp_path)
    cache.get_or_compute(DESCRIPTION, _array)
    path = cache.path(cache_key(DESCRIPTION))
    corrupt(path)
    cache_module._VERIFIED.clear()
    computed = []
    result = cache.get_or_compute(DESCRIPTION, lambda: computed.append(1) or _array())
    assert computed == [1] and np.array_equal(result, _array())
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "bad cache entry" in warning[0] and str(path) in warning[0], warning
    # The recomputed entry replaced the bad one: the next process reads it without a word.
    cache_module._VERIFIED.clear()
    assert np.array_equal(cache.get_or_compute(DESCRIPTION, lambda: pytest.fail("recomputed twice")), _array())
    assert capsys.readouterr().err == ""


def test_an_unstamped_entry_is_hashed_once_per_process_then_stamped(tmp_path, monkeypatch):
    cache = _fresh(tmp_path)
    cache.get_or_compute(DESCRIPTION, _array)
    cache_module.stamp_path(cache.path(cache_key(DESCRIPTION))).unlink()  # a copied cache: no stamp
    cache_module._VERIFIED.clear()
    calls = []
    real = cache_module._digest_as_stored
    monkeypatch.setattr(cache_module, "_digest_as_stored", lambda *args: calls.append(1) or real(*args))
    for _ in range(3):
        cache.get_or_compute(DESCRIPTION, lambda: pytest.fail("recomputed"))
    assert calls == [1]
    cache_module._VERIFIED.clear()  # another process: the stamp the first reader left serves it
    cache.get_or_compute(DESCRIPTION, lambda: pytest.fail("recomputed"))
    assert calls == [1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_are_never_cached(tmp_path, bad):
    cache = _fresh(tmp_path)
    array = _array()
    array[0, 0] = bad
    with pytest.raises(UserError, match="NaN or inf"):
        cache.get_or_compute(DESCRIPTION, lambda: array)
    assert not cache.path(cache_key(DESCRIPTION)).exists()


def test_streamed_entries_are_verified_too(tmp_path, capsys):
    cache = _fresh(tmp_path)
    description = {"kind": "image_tokens", "split": "s"}

    def fill(out):
        out[:] = np.arange(out.size, dtype=np.float16).reshape(out.shape)

    first = np.array(cache.get_or_compute_streaming(description, (4, 3, 2), np.float16, fill))
    path = cache.path(cache_key(description))
    _nan(path)
    cache_module._VERIFIED.clear()
    again = cache.get_or_compute_streaming(description, (4, 3, 2), np.float16, fill)
    assert np.array_equal(again, first) and "bad cache entry" in capsys.readouterr().err

    def fill_nan(out):
        out[:] = np.nan

    with pytest.raises(UserError, match="NaN or inf"):
        cache.get_or_compute_streaming({"kind": "image_tokens", "split": "t"}, (2, 2), np.float16, fill_nan)
    assert not cache.path(cache_key({"kind": "image_tokens", "split": "t"})).exists()
    assert not list(path.parent.parent.rglob(".*"))  # no temp file left


def test_cache_verify_and_ls_name_bad_entries(run_cli, tmp_path):
    cache = _fresh(tmp_path)
    cache.get_or_compute(DESCRIPTION, _array)
    other = {**DESCRIPTION, "split": "t"}
    cache.get_or_compute(other, _array)
    code, out, _ = run_cli("cache", "verify", "--cache-dir", cache.root)
    assert code == 0 and "all 2 entries verified" in out
    _garbage(cache.path(cache_key(other)))
    _no_checksum(cache.path(cache_key(DESCRIPTION)))
    cache_module._VERIFIED.clear()
    code, out, _ = run_cli("cache", "verify", "--cache-dir", cache.root)
    bad = [line for line in out.splitlines() if line.startswith("bad ")]
    assert code == 1 and len(bad) == 2 and "2 of 2 entries bad" in out
    assert any("checksum" in line for line in bad)
    code, out, _ = run_cli("cache", "ls", "--cache-dir", cache.root)
    assert code == 0 and "no checksum" in out


def test_a_corrupt_feature_entry_does_not_change_a_run(run_cli, tmp_path):
    cache = tmp_path / "cache"
    args = ["run", "--method", "linear_probe", "--dataset", "digits_lt", "--no-progress",
            "--cfg-options", "train.epochs=3", f"runtime.cache_dir={cache}"]

    def metrics(out):
        code, stdout, stderr = run_cli(*args[:1], "--out", out, *args[1:])
        assert code == 0, stderr
        record = Path(stdout.strip().splitlines()[-1].removeprefix("record: "))
        return json.loads(record.read_text())["metrics"], stderr

    first, _ = metrics(tmp_path / "a")
    features = [path for path in cache.rglob("*.npy")
                if json.loads(path.with_suffix(".json").read_text())["kind"] == "image_features"]
    assert features
    for path in features:
        _nan(path)
    cache_module._VERIFIED.clear()
    second, stderr = metrics(tmp_path / "b")
    assert second == first
    assert sum("bad cache entry" in line for line in stderr.splitlines()) == len(features)
