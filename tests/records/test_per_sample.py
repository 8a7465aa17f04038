"""Per-sample prediction files: written atomically with their SHA-256, checked when read back."""
import hashlib
import json

import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.metrics import per_sample_summary
from ltbench.records.per_sample import load_per_sample, per_sample_file_for, save_per_sample


def _summary(seed=0, n=12, classes=4):
    rng = np.random.default_rng(seed)
    return per_sample_summary(rng.normal(size=(n, classes)), np.arange(n) % classes)


def _saved(tmp_path):
    record_path = tmp_path / "run.json"
    entry = save_per_sample(per_sample_file_for(record_path), {"test": (_summary(0), "fp-test"), "val": (_summary(1), "fp-val")})
    record = {"eval_split": "test", "per_sample": entry}
    record_path.write_text(json.dumps(record))
    return record_path, record


def test_round_trip_and_the_recorded_hash(tmp_path):
    record_path, record = _saved(tmp_path)
    path = tmp_path / "run.preds.npz"
    assert record["per_sample"]["path"] == "run.preds.npz"
    assert record["per_sample"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["per_sample"]["fingerprints"] == {"test": "fp-test", "val": "fp-val"}
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was renamed into place
    test = load_per_sample(record_path, record)
    expected = _summary(0)
    for field in ("labels", "top_k", "top_prob", "true_prob", "sq_sum"):
        np.testing.assert_array_equal(test[field], expected[field])
    assert test["fingerprint"] == "fp-test"
    assert load_per_sample(record_path, record, "val")["fingerprint"] == "fp-val"
    # A few tens of bytes an image: 4 + 5 * 4 + 5 * 4 + 4 + 4 = 52 for five classes or more.
    assert sum(value.nbytes for key, value in test.items() if key != "fingerprint") == 12 * (4 + 4 * 4 + 4 * 4 + 4 + 4)


def test_errors_name_the_record_and_the_file(tmp_path):
    record_path, record = _saved(tmp_path)
    path = tmp_path / "run.preds.npz"
    with pytest.raises(UserError, match="no 'train' split"):
        load_per_sample(record_path, record, "train")
    with pytest.raises(UserError, match=r"run\.json: this run has no per-sample predictions"):
        load_per_sample(record_path, {"eval_split": "test"})
    other = dict(record, per_sample={**record["per_sample"], "fingerprints": {"test": "fp-other"}})
    with pytest.raises(UserError, match=r"run\.json: its per-sample file .*run\.preds\.npz is of another test split"):
        load_per_sample(record_path, other)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(UserError, match=r"run\.json: its per-sample file .*run\.preds\.npz has SHA-256") as error:
        load_per_sample(record_path, record)
    assert "\n" not in str(error.value)
    path.unlink()
    with pytest.raises(UserError, match=r"run\.json: its per-sample file .*run\.preds\.npz is missing"):
        load_per_sample(record_path, record)
