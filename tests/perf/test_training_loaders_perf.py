"""benchmarks/perf/training_loaders.py runs end to end at a tiny size (the old and new loaders'
batches checked equal inside; no timing checked)."""
import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "training_loaders.py"


def test_the_training_loader_benchmark_measures_both_paths(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("training_loaders", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        results = module.main(["--images", "40", "--workers", "1", "--epochs", "2", "--batch-size", "4",
                               "--size", "24", "--repeats", "1", "--json", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    assert set(results) == {"file_epochs", "in_memory_batch"}
    assert all(value > 0 for part in results.values() for value in part.values())
    assert "main-thread work a step" in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["results"] == results
