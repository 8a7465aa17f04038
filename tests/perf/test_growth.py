"""benchmarks/perf/growth.py runs end to end on tiny sizes and prints one row per cost and size,
the smallest size of each cost at growth 1.00x (no timings checked)."""
import importlib.util
import json

import torch


def test_growth_table_has_every_cost_and_size(tmp_path, capsys, repo_root):
    spec = importlib.util.spec_from_file_location("growth", repo_root / "benchmarks" / "perf" / "growth.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        script.main(["--images", "20,40", "--classes", "3,6", "--templates", "2", "--decoder-batch", "2",
                     "--decoder-tokens", "3", "--decoder-width", "8", "--decoder-steps", "1", "--repeats", "1",
                     "--batch-size", "16", "--json", str(tmp_path / "growth.json")])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "growth.json").read_text())["rows"]
    assert [(row["cost"].split(" (")[0], row["size"]) for row in rows] == [
        ("extraction", 20), ("extraction", 40), ("text classifier", 3), ("text classifier", 6),
        ("decoder step", 3), ("decoder step", 6)]
    assert [row["growth"] for row in rows[::2]] == [1.0, 1.0, 1.0]
    assert all(row["seconds"] > 0 for row in rows)
    assert printed.count("| extraction") == 2 and "1.00x" in printed and "ms / class" in printed


def test_growth_timers_wait_for_the_device(monkeypatch, repo_root):
    """On CUDA a call returns before its kernels finish: each timing starts and ends on an idle device."""
    spec = importlib.util.spec_from_file_location("growth", repo_root / "benchmarks" / "perf" / "growth.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    clock = {"now": 0.0, "queued": 0.0}

    def synchronize(device=None):
        assert torch.device(device) == torch.device("cuda", 2)
        clock["now"] += clock["queued"]
        clock["queued"] = 0.0

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(script.time, "perf_counter", lambda: clock["now"])
    clock["queued"] = 100.0  # work queued before: not this measurement's
    seconds = script._best(1, lambda: clock.__setitem__("queued", 3.0), torch.device("cuda", 2))
    assert seconds == 3.0
