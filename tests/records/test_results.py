import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import ltbench
from ltbench.config import config_hash
from ltbench.core import atomic
from ltbench.core.atomic import write_json_atomic, write_text_atomic
from ltbench.core.names import backbone_slug
from ltbench.metrics import evaluate
from ltbench.records import results
from ltbench.records.results import (
    SCHEMA_VERSION,
    load_records,
    make_record,
    record_path,
    software_versions,
)

CLASS_COUNTS = [150, 50, 5]


def synthetic_record(seed=1, config=None, **overrides):
    labels = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 0]]  # class 0: 1/2, class 1: 2/2, class 2: 1/2 correct
    parts = {
        "method": "linear_probe",
        "dataset": "places_lt",
        "backbone": "RN50:openai",
        "seed": seed,
        "eval_split": "test",
        "config": config or {"seed": seed, "train": {"lr": 0.01}},
        "versions": {"ltbench": "0.1.0", "git_sha": None, "git_dirty": None},
        "class_counts": np.array(CLASS_COUNTS),
        "metrics": evaluate(logits, labels, CLASS_COUNTS),
        "timings": {"fit": np.float64(1.23456), "total": 2.0},
        "device": "cpu",
    }
    parts.update(overrides)
    return make_record(**parts)


def test_record_path_layout_and_slug():
    path = record_path("res", "places_lt", "linear_probe", "ViT-B-16:openai", "0123456789abcdef", 3)
    assert path == Path("res/runs/places_lt/linear_probe__ViT-B-16-openai__0123456789__seed3.json")


def test_checkpoint_backbones_with_the_same_file_name_do_not_collide():
    first = backbone_slug("ViT-B-16:/runs/a/last.pt")
    second = backbone_slug("ViT-B-16:/runs/b/last.pt")
    assert first != second
    for slug in (first, second, backbone_slug("/runs/a/last.pt"), backbone_slug(r"ViT-B-16:C:\runs\last.pt")):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", slug)
        assert "last.pt" in slug and "runs" not in slug
    assert first.startswith("ViT-B-16-last.pt-")


def test_make_record_fields_and_run_id():
    record = synthetic_record(seed=2)
    assert record["schema"] == SCHEMA_VERSION == 2
    assert record["config_hash"] == config_hash(record["config"])
    # The seed is not part of the hash: seeds of one configuration group together.
    assert record["config_hash"] == synthetic_record(seed=5)["config_hash"]
    path = record_path("res", "places_lt", "linear_probe", "RN50:openai", record["config_hash"], 2)
    assert record["run_id"] == path.stem
    assert record["class_counts"] == CLASS_COUNTS and all(type(c) is int for c in record["class_counts"])
    assert record["split_files"] == {} and record["extra_metrics"] == {} and record["logits_path"] is None
    assert record["timings"] == {"fit": 1.235, "total": 2.0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", record["created"])


def write_synthetic_record(results_dir, record):
    path = record_path(results_dir, record["dataset"], record["method"], record["backbone"],
                       record["config_hash"], record["seed"])
    write_json_atomic(path, record)
    return path


def test_a_written_record_round_trips_through_load_records(tmp_path):
    record = synthetic_record()
    path = write_synthetic_record(tmp_path, record)
    assert load_records(tmp_path) == [(path, json.loads(json.dumps(record)))]


def test_write_json_atomic_creates_directory_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "record.json"
    write_json_atomic(path, {"value": 1})
    write_json_atomic(path, {"value": np.int64(2), "where": Path("x/y")})
    assert json.loads(path.read_text()) == {"value": 2, "where": "x/y"}
    assert os.listdir(path.parent) == ["record.json"]


def test_failed_replace_keeps_the_existing_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "record.json"
    write_json_atomic(path, {"value": "old"})

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"value": "new"})
    assert json.loads(path.read_text()) == {"value": "old"}
    assert os.listdir(tmp_path) == ["record.json"]


def test_unserializable_data_keeps_the_existing_file(tmp_path):
    path = tmp_path / "record.json"
    write_text_atomic(path, "old\n")
    with pytest.raises(TypeError):
        write_json_atomic(path, {"value": object()})
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["record.json"]


def test_load_records_skips_bad_files_with_one_warning_each(tmp_path, capsys):
    good = write_synthetic_record(tmp_path, synthetic_record())
    runs = good.parent
    (runs / "truncated.json").write_text(good.read_text()[:40])
    (runs / "missing_keys.json").write_text(json.dumps({"schema": 1, "method": "x"}))
    mismatched = synthetic_record(seed=2)
    mismatched["class_counts"] = [1, 2]
    write_json_atomic(runs / "mismatched.json", mismatched)
    (runs / ".abandoned.json.123.tmp").write_text("{")  # a killed writer's temp file is not a record

    assert [path for path, _ in load_records(tmp_path)] == [good]
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 3
    assert all(line.startswith("warning: skipping ") for line in warnings)
    assert "mismatched.json: 3 per-class accuracies for 2 class counts" in warnings[0]
    assert "missing_keys.json: missing keys: run_id, dataset" in warnings[1]
    assert "truncated.json: cannot read a record" in warnings[2]


def test_load_records_without_runs_directory(tmp_path):
    assert load_records(tmp_path / "nothing") == []


def test_software_versions(monkeypatch):
    # Importing torch / open_clip / timm takes seconds; absence is tested below.
    monkeypatch.setattr(results, "_module_version", lambda name: f"{name}-version")
    versions = software_versions()
    assert list(versions) == ["ltbench", "git_sha", "git_dirty", "python", "torch", "open_clip", "timm", "numpy"]
    assert versions["ltbench"] == ltbench.__version__
    assert versions["torch"] == "torch-version"
    if versions["git_sha"] is not None:  # run from a git checkout
        assert re.fullmatch(r"[0-9a-f]{40}", versions["git_sha"])
        assert isinstance(versions["git_dirty"], bool)


def test_module_version_tolerates_absence():
    assert results._module_version("numpy") == np.__version__
    assert results._module_version("no_such_module_for_ltbench") is None


def test_git_state_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    unknown = {"git_sha": None, "git_dirty": None}
    assert results._git_state(tmp_path) == unknown
    # A directory inside some repository, but not its top level (an installed package in a venv).
    assert results._git_state(Path(ltbench.__file__).resolve().parent) == unknown
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable
    assert results._git_state(Path(ltbench.__file__).resolve().parent.parent) == unknown


def test_the_record_keeps_the_class_names_and_the_report_shows_them():
    from ltbench.records.report import _per_class_rows

    record = synthetic_record(class_names=("tench", "goldfish", "great white shark"))
    assert record["class_names"] == ["tench", "goldfish", "great white shark"]
    assert [row["name"] for row in _per_class_rows(record)] == record["class_names"]
    # Records from before the names (or with a list that does not fit) show class indices alone.
    for older in (synthetic_record(), {**record, "class_names": ["tench"]}):
        assert [row["name"] for row in _per_class_rows(older)] == [None] * 3
        assert [row["index"] for row in _per_class_rows(older)] == [0, 1, 2]
