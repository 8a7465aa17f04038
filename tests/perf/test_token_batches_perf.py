"""benchmarks/perf/token_batches.py runs end to end at a tiny size (its batches checked equal to
the old path's; no timing checked)."""
import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "token_batches.py"


def test_the_token_batch_benchmark_times_every_path(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("token_batches", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        results = module.main(["--images", "40", "--tokens", "5", "--width", "8", "--batch-size", "8",
                               "--batches", "2", "--repeats", "1", "--json", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    assert len(results) == 3 and all(seconds > 0 for seconds in results.values())
    assert "speed-up vs old" in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["seconds"] == results
