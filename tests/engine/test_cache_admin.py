"""`ltbench cache ls | rm` on a cache filled through ArrayCache, with stray temp files."""
import os
import time

import numpy as np
import pytest

from ltbench.engine.cache import ArrayCache, cache_key, format_bytes

DAY = 86400
FEATURES = {"kind": "image_features", "weights": "ab12cd34" * 8, "split": "file:" + "ef56" * 16,
            "transform": {"kind": "eval", "size": 224, "mean": [0.5] * 3, "std": [0.5] * 3,
                          "interpolation": "bicubic"}, "precision": "bf16"}
OLD_FEATURES = {**FEATURES, "split": "file:" + "0123" * 16}
CLASSIFIER = {"kind": "text_classifier", "weights": "99887766" * 8, "class_names_sha256": "55" * 32,
              "templates": ["a photo of a {}."] * 80, "precision": "fp32"}


def _age(paths, days):
    stamp = time.time() - days * DAY
    for path in paths:
        os.utime(path, (stamp, stamp))


@pytest.fixture
def cache(tmp_path):
    """Three entries (one 30 days old), a temp file a killed writer left 2 days ago, and a fresh one."""
    cache = ArrayCache(tmp_path / "cache")
    cache.save(cache_key(FEATURES), np.zeros((300, 64), np.float32), FEATURES)
    cache.save(cache_key(OLD_FEATURES), np.zeros((50, 64), np.float32), OLD_FEATURES)
    cache.save(cache_key(CLASSIFIER), np.zeros((1000, 512), np.float16), CLASSIFIER)
    old = cache.path(cache_key(OLD_FEATURES))
    _age([old, old.with_suffix(".json")], 30)
    stray = cache.path(cache_key(FEATURES)).parent / ".ab12cd34.x1y2z3.npy"
    stray.write_bytes(b"\0" * 5000)
    _age([stray], 2)
    fresh = cache.path(cache_key(CLASSIFIER)).parent / ".99887766.running.npy"
    fresh.write_bytes(b"\0" * 100)
    cache.stray, cache.fresh = stray, fresh
    return cache


def _files(cache):
    return sorted(path.name for path in cache.root.rglob("*") if path.is_file())


def _entry_files(cache, description):
    key = cache_key(description)
    return [f"{key}.json", f"{key}.npy", f"{key}.verified"]


def test_ls_reads_headers_and_descriptions_without_loading_arrays(cache, run_cli, monkeypatch):
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: pytest.fail("ls loaded an array"))
    code, out, _ = run_cli("cache", "ls", "--cache-dir", cache.root)
    assert code == 0
    lines = out.splitlines()
    features = next(line for line in lines if line.startswith(cache_key(FEATURES)[:12]))
    for text in ("image_features", "300x64", "float32", "weights ab12cd34", "split file:ef56ef56",
                 "eval 224px bicubic", "precision bf16"):
        assert text in features
    classifier = next(line for line in lines if line.startswith(cache_key(CLASSIFIER)[:12]))
    for text in ("text_classifier", "1000x512", "float16", "classes 55555555", "80 templates"):
        assert text in classifier
    # Sorted by kind, then date: the 30-day-old features before today's, the classifier last.
    keys = [line.split()[0] for line in lines if line.split() and len(line.split()[0]) == 12]
    assert keys == [cache_key(d)[:12] for d in (OLD_FEATURES, FEATURES, CLASSIFIER)]
    stray = next(line for line in lines if line.startswith(cache.stray.name))
    assert " temp " in stray and "5.0 kB" in stray and "killed writer" in stray
    fresh = next(line for line in lines if line.startswith(cache.fresh.name))
    assert "may still be running" in fresh
    assert lines[-1].startswith("3 entries and 2 temp files, ") and lines[-1].endswith(" in all")


def test_ls_flags_a_truncated_array_and_an_empty_cache(tmp_path, run_cli):
    cache = ArrayCache(tmp_path)
    key = cache_key({"kind": "image_features"})
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"\x93NUMPY garbage")
    code, out, _ = run_cli("cache", "ls", "--cache-dir", tmp_path)
    assert code == 0 and "unreadable array" in out and "1 entry, " in out
    code, out, _ = run_cli("cache", "ls", "--cache-dir", tmp_path / "nothing")
    assert code == 0 and out.strip().endswith(": empty")


def test_rm_by_key_prefix_removes_npy_and_json_together(cache, run_cli):
    before = _files(cache)
    npy = cache.path(cache_key(FEATURES))
    size = npy.stat().st_size + npy.with_suffix(".json").stat().st_size
    code, out, _ = run_cli("cache", "rm", cache_key(FEATURES)[:6], "--cache-dir", cache.root)
    assert code == 0
    assert f"removed 1 entry from {cache.root}, freed {format_bytes(size)}" in out
    assert _files(cache) == sorted(set(before) - set(_entry_files(cache, FEATURES)))


@pytest.mark.parametrize("args, message", [
    ((), "refusing to empty the whole cache"),
    (("0000",), "no cache entry with key prefix '0000'"),
    (("xyz",), "'xyz' is not a cache key prefix"),
    (("--kind", "image_feature"), "unknown cache entry kind 'image_feature' (did you mean: image_features"),
    (("--older-than", "-1"), "--older-than must be a number of days >= 0"),
])
def test_rm_errors_are_one_line_and_remove_nothing(cache, run_cli, args, message):
    before = _files(cache)
    code, out, err = run_cli("cache", "rm", *args, "--cache-dir", cache.root)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err
    assert _files(cache) == before


def test_rm_rejects_an_ambiguous_prefix(tmp_path, run_cli):
    cache = ArrayCache(tmp_path)
    descriptions = [{"kind": "x", "n": n} for n in range(40)]  # 40 keys: two share a first hex digit
    for description in descriptions:
        cache.save(cache_key(description), np.zeros(1), description)
    digits = [cache_key(d)[0] for d in descriptions]
    shared = next(digit for digit in digits if digits.count(digit) > 1)
    code, _, err = run_cli("cache", "rm", shared, "--cache-dir", tmp_path)
    assert code == 2 and f"key prefix '{shared}' matches" in err and "give more characters" in err
    assert len(list(tmp_path.rglob("*.npy"))) == 40


def test_rm_filters_dry_run_and_all(cache, run_cli):
    before = _files(cache)
    code, out, _ = run_cli("cache", "rm", "--kind", "image_features", "--dry-run", "--cache-dir", cache.root)
    assert code == 0 and "would remove 2 entries" in out and "would free" in out and _files(cache) == before

    code, out, _ = run_cli("cache", "rm", "--older-than", "7", "--cache-dir", cache.root)
    assert code == 0 and "removed 1 entry from" in out
    assert _files(cache) == sorted(set(before) - set(_entry_files(cache, OLD_FEATURES)))

    # The temp file of a killed writer goes; one written minutes ago may belong to a running writer.
    code, out, _ = run_cli("cache", "rm", "--kind", "temp", "--cache-dir", cache.root)
    assert code == 0 and "removed 1 temp file" in out and "kept 1 temp file" in out
    assert not cache.stray.exists() and cache.fresh.exists()

    code, out, _ = run_cli("cache", "rm", "--all", "--cache-dir", cache.root)
    assert code == 0 and "removed 2 entries from" in out
    assert _files(cache) == [cache.fresh.name]
