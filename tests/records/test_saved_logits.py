"""Saved logits (``--save-logits [FORMAT]``, issue 23: 1.59 GB for one iNaturalist-sized linear
probe, its val split, which is its test split, stored twice in float32): a split stored once when
it is another split, float16 and topK formats, and what their readers do with them."""
import json
import types

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.records.saved_logits import SavedRun, logits_format, save_logits, top_logits


def _split(name, labels, fingerprint="f" * 64):
    return types.SimpleNamespace(name=name, labels=np.asarray(labels), fingerprint=fingerprint)


def _saved_run(tmp_path, evaluated, fmt):
    record = tmp_path / "run.json"
    save_logits(record.with_suffix(".logits.npz"), evaluated, fmt)
    record.write_text(json.dumps({"method": "linear_probe", "logits_path": "run.logits.npz"}))
    return SavedRun(record)


@pytest.fixture
def logits():
    return np.random.default_rng(0).normal(scale=20, size=(300, 200)).astype(np.float32)


def test_a_val_split_that_is_the_test_split_is_stored_once(tmp_path, logits):
    labels = np.arange(300) % 200
    test, val = _split("test", labels), _split("val", labels)
    run = _saved_run(tmp_path, {"test": (logits, test), "val": (logits, val)}, "float32")
    with np.load(run.logits_path) as saved:
        assert "logits_val" not in saved.files and str(saved["same_as_val"]) == "test"
    assert run.logits_path.stat().st_size < 1.1 * logits.nbytes  # before: twice the logits
    assert np.array_equal(run.logits(val), logits) and np.array_equal(run.logits(test), logits)
    # Another split of other images (or other logits) is stored on its own.
    other = _split("val", labels, fingerprint="e" * 64)
    run = _saved_run(tmp_path, {"test": (logits, test), "val": (logits + 1, other)}, "float32")
    assert np.array_equal(run.logits(other), logits + 1)


def test_float16_halves_the_file_and_rounds_each_logit_to_11_significant_bits(tmp_path, logits):
    split = _split("test", np.arange(300) % 200)
    run = _saved_run(tmp_path, {"test": (logits, split)}, "float16")
    read = run.logits(split)
    assert read.dtype == np.float32 and run.format == "float16"
    assert np.all(np.abs(read - logits) <= np.maximum(np.abs(logits) * 2.0 ** -11, 2.0 ** -25))
    assert run.logits_path.stat().st_size < 0.55 * logits.nbytes
    # Beyond float16's range the split keeps float32 rather than turning into inf.
    huge = logits * 1e4
    assert np.array_equal(_saved_run(tmp_path, {"test": (huge, split)}, "float16").logits(split), huge)


def test_top_k_keeps_the_highest_logits_ties_by_class_index_and_the_true_logit():
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [5.0, 4.0, 4.0, 4.0, 9.0]], dtype=np.float32)
    kept = top_logits(logits, np.array([3, 1]), 2)
    assert kept["top_classes"].tolist() == [[1, 2], [4, 0]]
    assert kept["top_logits"].tolist() == [[3.0, 3.0], [9.0, 5.0]] and kept["true_logit"].tolist() == [0.0, 4.0]
    assert top_logits(logits, np.array([3, 1]), 3)["top_classes"].tolist() == [[1, 2, 4], [4, 0, 1]]


def test_a_top_k_file_is_small_and_refused_where_every_logit_is_needed(tmp_path, logits):
    split = _split("test", np.arange(300) % 200)
    run = _saved_run(tmp_path, {"test": (logits, split)}, "top5")
    assert run.logits_path.stat().st_size < 0.2 * logits.nbytes
    with np.load(run.logits_path) as saved:
        order = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        assert np.array_equal(saved["top_classes_test"], order)
        assert np.array_equal(saved["true_logit_test"], logits[np.arange(300), np.arange(300) % 200])
    for call in (lambda: run.require_every_class("an ensemble member"), lambda: run.logits(split)):
        with pytest.raises(UserError, match="saved as top5 .* rerun it with --save-logits"):
            call()


@pytest.mark.parametrize("value, expected", [(True, "float32"), (False, None), (None, None), ("float16", "float16"),
                                             ("top10", "top10")])
def test_formats(value, expected):
    assert logits_format(value) == expected


@pytest.mark.parametrize("value", ["float64", "top0", "top", "yes", 16])
def test_an_unknown_format_is_one_line(value):
    with pytest.raises(UserError, match="give float32 .*float16 .*topK"):
        logits_format(value)


def test_compact_formats_end_to_end(run_cli, tmp_path):
    """A float16 linear probe feeds posthoc_la; a top5 one is refused by it in one line before any
    work, and an unknown format before the run starts."""
    out = tmp_path / "out"

    def run(method, *flags, expect=0):
        code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                       "--no-progress", *flags)
        assert code == expect, stderr
        return stdout, stderr

    stdout, _ = run("linear_probe", "--save-logits", "float16")
    source = stdout.strip().splitlines()[-1].removeprefix("record: ")
    stdout, _ = run("posthoc_la", "--cfg-options", f"source={source}")
    assert "posthoc_la on digits_lt" in stdout
    top = tmp_path / "top"
    code, stdout, stderr = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", top,
                                   "--no-progress", "--save-logits", "top5")
    assert code == 0, stderr
    top_source = stdout.strip().splitlines()[-1].removeprefix("record: ")
    _, stderr = run("posthoc_la", "--cfg-options", f"source={top_source}", expect=2)
    assert "saved as top5" in stderr and len(stderr.strip().splitlines()) == 1
    _, stderr = run("zeroshot_clip", "--save-logits", "float64", expect=2)
    assert "runtime.save_logits='float64'" in stderr and "top10" in stderr and "set by --save-logits" in stderr and len(stderr.strip().splitlines()) == 1
