"""`ltbench table` validates records as it loads them: types and ranges (issue 13, item 7)."""
import json

import numpy as np
import pytest

from ltbench.core.atomic import write_json_atomic
from ltbench.metrics import evaluate
from ltbench.records.results import load_records, make_record, record_path


def _record(seed=0, changes=None):
    counts = [5, 3, 1]
    logits = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    metrics = evaluate(logits, np.array([0, 1, 2, 0, 1, 1]), counts, "standard")
    record = make_record(method="m", dataset="d", backbone="tiny", seed=seed, eval_split="test",
                         config={"method": "m", "x": 1}, versions={}, class_counts=counts, shot_counts=counts,
                         metrics=metrics, timings={}, device="cpu", split_files={},
                         devices={"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 2, "driver": "550.54.15",
                                  "cuda": "12.4", "cudnn": 90100},
                         stages={"fit": {"precision": "bf16", "peak_device_bytes": 3 << 30, "peak_host_bytes": 1 << 30}},
                         numerics={"deterministic": False})
    for dotted, value in (changes or {}).items():
        node = record
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return record


BAD = [
    ("overall_huge", {"metrics__overall": 1e9}, "metrics.overall is 1000000000.0"),
    ("overall_negative", {"metrics__overall": -1}, "metrics.overall is -1"),
    ("overall_string", {"metrics__overall": "55.3"}, "metrics.overall is '55.3'"),
    ("overall_null", {"metrics__overall": None}, "metrics.overall is None"),
    ("few_above_100", {"metrics__few": 100.5}, "metrics.few is 100.5"),
    ("per_class_string", {"metrics__per_class_accuracy": ["a", 1.0, 2.0]}, "per_class_accuracy holds 'a'"),
    ("seed_string", {"seed": "0"}, "'seed' is '0'"),
    ("seed_negative", {"seed": -1}, "'seed' is -1"),
    ("method_number", {"method": 3}, "'method' is 3"),
    ("class_counts_float", {"class_counts": [5.5, 3, 1]}, "'class_counts' must hold integers"),
    # What a GPU run records (issue 22): devices, per-stage precision and peak memory, numerics.
    ("devices_list", {"devices": ["cuda"]}, "'devices' is not a JSON object"),
    ("devices_type", {"devices__type": "tpu"}, "devices.type is 'tpu'"),
    ("devices_count_zero", {"devices__count": 0}, "devices.count is 0"),
    ("stage_precision", {"stages__fit__precision": "fp16"}, "stages.fit.precision is 'fp16'"),
    ("stage_peak_negative", {"stages__fit__peak_device_bytes": -1}, "stages.fit.peak_device_bytes is -1"),
    ("stage_host_peak_null", {"stages__fit__peak_host_bytes": None}, "stages.fit.peak_host_bytes is None"),
    ("stage_not_object", {"stages__fit": 3.5}, "'stages' must map each stage to a JSON object"),
    ("numerics_deterministic", {"numerics__deterministic": "yes"}, "numerics.deterministic is 'yes'"),
    # What a run cost (issue 25).
    ("cost_list", {"cost": [1, 2]}, "'cost' is not a JSON object"),
]


@pytest.mark.parametrize("case, changes, message", BAD, ids=[case[0] for case in BAD])
def test_a_bad_record_is_skipped_with_a_warning_naming_the_file(tmp_path, capsys, run_cli, case, changes, message):
    good = _record(seed=0)
    good_path = record_path(tmp_path, "d", "m", "tiny", good["config_hash"], 0)
    write_json_atomic(good_path, good)
    bad_path = good_path.parent / f"bad_{case}.json"
    bad_path.write_text(json.dumps(_record(seed=1, changes=changes)))
    assert [path for path, _ in load_records(tmp_path)] == [good_path]
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and str(bad_path) in warnings[0] and message in warnings[0], warnings
    code, out, err = run_cli("table", "--results", tmp_path)
    assert code == 0 and "Traceback" not in err and str(bad_path) in err
    table = (tmp_path / "tables" / "d.md").read_text()
    assert "1e+09" not in table and "1000000000" not in table


def test_a_record_from_before_devices_and_stages_is_still_read(tmp_path):
    old = _record()
    for key in ("devices", "stages", "numerics", "cost"):
        old.pop(key)
    path = record_path(tmp_path, "d", "m", "tiny", old["config_hash"], 0)
    write_json_atomic(path, old)
    assert [found for found, _ in load_records(tmp_path)] == [path]
