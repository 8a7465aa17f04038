"""benchmarks/perf/compare_bench.py runs end to end on tiny sizes (no timing checked)."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "compare_bench.py"


def test_compare_bench_prints_its_figure(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("compare_bench", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # pin_threads sets them; monkeypatch restores them
    out = tmp_path / "bench.json"
    numbers = script.main(["--images", "600", "--classes", "20", "--bootstrap", "300", "--threads", "1",
                           "--repeats", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert printed.startswith("ltbench compare: 600 images x 20 classes, 300 paired bootstrap resamples")
    assert "load average" in printed and "95% CI" in printed
    saved = json.loads(out.read_text())
    assert saved["best_seconds"] > 0 and len(saved["all_seconds"]) == 2 and saved == numbers
    low, high = saved["overall_difference_ci"]
    assert low < high
