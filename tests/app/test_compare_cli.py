"""`ltbench compare` and the table views on two real digits_lt runs with the tiny CLIP."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ltbench.app.cli import main


@pytest.fixture
def results(quickstart_results):
    """The quick start's two runs (tests/conftest.py), made once for every test that reads them."""
    return quickstart_results


def _records(results):
    return {json.loads(path.read_text())["method"]: (path, json.loads(path.read_text()))
            for path in sorted((results / "runs" / "digits_lt").glob("*.json"))}


def test_every_run_names_its_per_sample_file_and_hash(results):
    for path, record in _records(results).values():
        entry = record["per_sample"]
        preds = path.parent / entry["path"]
        assert preds.name == path.name.replace(".json", ".preds.npz")
        assert hashlib.sha256(preds.read_bytes()).hexdigest() == entry["sha256"]
        assert set(entry["fingerprints"]) == {"test", "val"}
        with np.load(preds) as saved:
            correct = saved["top_k_test"][:, 0] == saved["labels_test"]
            assert 100 * correct.mean() == pytest.approx(record["metrics"]["overall"])
        assert set(record["metrics"]["test_agnostic"]) >= {"forward-50", "uniform", "backward-50"}
        assert record["metrics"]["test_agnostic"]["uniform"] == pytest.approx(record["metrics"]["mean_per_class"])
        assert {"ece", "mce", "nll", "brier", "many", "medium", "few"} <= set(record["metrics"]["calibration"])
        assert "calibration" in record["extra_metrics"]["val"]


def test_compare_from_the_cli(results, run_cli):
    # Its speed: benchmarks/perf/quick_commands.py --only compare (under 5 s was the budget).
    code, out, err = run_cli("compare", "zeroshot_clip", "linear_probe", "--dataset", "digits_lt", "--results", results)
    assert code == 0, err
    assert "| Overall" in out and "mcnemar-exact" in out and "10000 resamples" in out

    records = _records(results)
    code, out, err = run_cli("compare", records["zeroshot_clip"][0], records["linear_probe"][0], "--json", "--bootstrap", "500")
    assert code == 0, err
    [entry] = json.loads(out)["comparisons"]
    a, b = records["zeroshot_clip"][1]["metrics"], records["linear_probe"][1]["metrics"]
    for name in ("overall", "many", "medium", "few", "mean_per_class"):
        assert entry["statistics"][name]["difference"] == pytest.approx(b[name] - a[name])
        low, high = entry["statistics"][name]["ci"]
        assert low <= entry["statistics"][name]["difference"] <= high
    counts = entry["mcnemar"][0]
    assert counts["p"] == pytest.approx(scipy_stats.binomtest(counts["only_b"], counts["only_a"] + counts["only_b"]).pvalue)
    code, again, _ = run_cli("compare", records["zeroshot_clip"][0], records["linear_probe"][0], "--json", "--bootstrap", "500")
    assert again == out  # seeded: the same numbers every time

    code, out, _ = run_cli("compare", "zeroshot_clip", "linear_probe", "zeroshot_clip", "--dataset", "digits_lt",
                           "--results", results, "--format", "csv", "--bootstrap", "200")
    assert code == 0 and out.splitlines()[0].endswith("p (holm)")


def test_compare_errors_are_one_line(results, run_cli, tmp_path):
    code, _, err = run_cli("compare", "zeroshot_clip", "nothing", "--dataset", "digits_lt", "--results", results)
    assert code == 2 and err.count("\n") == 1 and "no run of 'nothing' on digits_lt" in err
    # A per-sample file that was changed after its record was written.
    path, record = _records(results)["zeroshot_clip"]
    moved = tmp_path / path.name
    moved.write_text(path.read_text())
    (tmp_path / record["per_sample"]["path"]).write_bytes(b"not the file")
    code, _, err = run_cli("compare", moved, _records(results)["linear_probe"][0])
    assert code == 2 and err.count("\n") == 1 and str(moved) in err and record["per_sample"]["path"] in err


def test_table_views(results, run_cli):
    code, out, err = run_cli("table", "--results", results, "--no-reported", "--ci", "--bootstrap", "500",
                             "--test-dist", "all", "--calibration")
    assert code == 0 and not err
    header = [cell.strip() for cell in out.splitlines()[2].strip("|").split("|")]
    assert header[7:9] == ["Overall [95% CI]", "forward-50"] and header[-4:] == ["ECE", "MCE", "NLL", "Brier"]
    row = [cell.strip() for cell in out.splitlines()[4].strip("|").split("|")]
    metrics = _records(results)["linear_probe"][1]["metrics"]
    assert row[0] == "linear_probe" and row[7].startswith(f"{metrics['overall']:.2f} [")
    assert row[8] == f"{metrics['test_agnostic']['forward-50']:.2f}"
    assert row[-2] == f"{metrics['calibration']['nll']:.3f}"


def test_records_from_before_still_load_with_one_warning(results, run_cli, tmp_path):
    old = tmp_path / "old"
    for path, record in _records(results).values():
        for key in ("per_sample",):
            record.pop(key)
        record["metrics"].pop("test_agnostic")
        record["metrics"].pop("calibration")
        target = old / "runs" / "digits_lt" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record))
    code, out, err = run_cli("table", "--results", old, "--no-reported")
    assert code == 0 and not err  # the default table needs none of the new fields
    code, out, err = run_cli("table", "--results", old, "--no-reported", "--ci", "--test-dist", "uniform", "--calibration")
    assert code == 0
    assert err.count("\n") == 1 and "warning" in err
    assert "metrics.calibration" in err and "metrics.test_agnostic" in err and "per_sample" in err
    row = [cell.strip() for cell in out.splitlines()[4].strip("|").split("|")]
    assert row[8:] == ["-"] * 5
    code, _, err = run_cli("compare", "zeroshot_clip", "linear_probe", "--dataset", "digits_lt", "--results", old)
    assert code == 2 and "has no per-sample predictions" in err


def test_the_per_sample_file_is_on_disk_before_the_record(tmp_path, monkeypatch):
    """The record, its per-sample file (and logits) are published together; the record's rename
    comes last, so a record never names a per-sample file that is not there."""
    from ltbench.core import atomic

    seen = []
    real_publish = atomic.publish

    def publish(temp, path, *args, **kwargs):
        if path.suffix == ".json":
            record = json.loads(Path(temp).read_text())
            preds = path.parent / record["per_sample"]["path"]
            seen.append(preds.is_file() and hashlib.sha256(preds.read_bytes()).hexdigest() == record["per_sample"]["sha256"])
        return real_publish(temp, path, *args, **kwargs)

    monkeypatch.setattr(atomic, "publish", publish)
    assert main(["run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--seed", "3", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    assert seen == [True]


def test_records_of_config_schema_1_are_read_as_they_are(results, run_cli, tmp_path):
    """Records written before the options were declared (schema 1: a config without the options
    added since, with the keys dropped since, and its own hash) still make tables, comparisons and
    the report; a record of a schema this ltbench does not know is refused in one line."""
    import shutil

    old = tmp_path / "old" / "runs" / "digits_lt"
    old.mkdir(parents=True)
    for path, record in _records(results).values():
        record["schema"] = 1
        record["config"]["backbone"]["activation"] = "pretrained"
        record["config"]["resize"] = "pil"
        for key in ("jpeg_draft", "gpu_jpeg", "deterministic"):
            record["config"].pop(key)
        record["config_hash"] = hashlib.sha256(path.name.encode()).hexdigest()  # the old hashing's
        (old / path.name).write_text(json.dumps(record))
        shutil.copy(path.parent / record["per_sample"]["path"], old / record["per_sample"]["path"])
    results_old = old.parent.parent
    code, out, err = run_cli("table", "--results", results_old, "--no-reported")
    assert code == 0 and not err and "zeroshot_clip" in out and "linear_probe" in out
    code, out, err = run_cli("compare", "zeroshot_clip", "linear_probe", "--dataset", "digits_lt", "--results",
                             results_old, "--bootstrap", "200")
    assert code == 0 and "| Overall" in out, err
    code, _, err = run_cli("report", "--results", results_old, "--out", tmp_path / "site")
    assert code == 0 and "Traceback" not in err and (tmp_path / "site" / "index.html").is_file()
    unknown = json.loads(next(old.glob("zeroshot_clip*.json")).read_text())
    unknown["schema"] = 99
    (old / "from_the_future.json").write_text(json.dumps(unknown))
    code, out, err = run_cli("table", "--results", results_old, "--no-reported")
    assert code == 0 and err.count("\n") == 1 and "record schema 99, this ltbench reads schemas 1, 2" in err


@pytest.mark.e2e
def test_two_configurations_of_a_method_are_named_by_the_option_that_differs(tmp_path, run_cli):
    """Issue 24 item 7: table, compare and plot name two configs of one method by their differing
    option (zeroshot_clip with the 80 templates and with one), not by a hash."""
    for templates in ("openai_imagenet", "single"):
        code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--backbone", "tiny",
                               "--out", tmp_path, "--no-progress", "--cfg-options", f"text.templates={templates}")
        assert code == 0, err
    code, out, err = run_cli("table", "--dataset", "digits_lt", "--results", tmp_path)
    assert code == 0, err
    assert "zeroshot_clip[text.templates=openai_imagenet]" in out and "zeroshot_clip[text.templates=single]" in out
    hashes = sorted(json.loads(path.read_text())["config_hash"][:8]
                    for path in (tmp_path / "runs" / "digits_lt").glob("*.json"))
    code, out, err = run_cli("compare", f"zeroshot_clip@{hashes[0]}", f"zeroshot_clip@{hashes[1]}",
                             "--dataset", "digits_lt", "--results", tmp_path, "--json", "--bootstrap", "200")
    assert code == 0, err
    [entry] = json.loads(out)["comparisons"]
    assert {entry["a"], entry["b"]} == {"zeroshot_clip[text.templates=openai_imagenet](tiny)",
                                        "zeroshot_clip[text.templates=single](tiny)"}
