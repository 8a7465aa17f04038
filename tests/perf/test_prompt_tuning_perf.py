"""benchmarks/perf/prompt_tuning.py and gpu_check.py's prompt_tuning section run the real CoOp
step end to end at tiny sizes on the CPU (no timings checked: only that every number comes out
and the memory accounting says what checkpointing keeps)."""
import importlib.util
import json
from pathlib import Path

import torch

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"perf_{name}", PERF / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_thread(run):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def test_the_prompt_tuning_benchmark_prints_the_cost_growth_at_100_1000_8142_classes(tmp_path, capsys):
    results = _one_thread(lambda: _load("prompt_tuning").main(
        ["--backbone", "tiny", "--classes", "4,8", "--chunk", "4", "--steps", "1", "--threads", "1",
         "--json", str(tmp_path / "p.json")]))
    out = capsys.readouterr().out
    assert "Estimated (extrapolated" in out and "8142" in out
    assert json.loads((tmp_path / "p.json").read_text())["estimated"] == results["estimated"]
    measured = {(row["classes"], row["checkpointing"]): row["saved_bytes"] for row in results["measured"]}
    # Without checkpointing the kept activations grow with the classes; with it, only the chunk
    # outputs are kept: far less.
    assert measured[(8, False)] > 1.5 * measured[(4, False)]
    assert measured[(8, True)] * 10 < measured[(8, False)]
    estimated = {(row["classes"], row["checkpointing"]): row for row in results["estimated"]}
    assert {classes for classes, _ in estimated} == {100, 1000, 8142}
    assert all(row["step_seconds_estimate"] > 0 for row in estimated.values())
    assert estimated[(8142, True)]["activation_bytes_estimate_fp32"] * 10 < \
        estimated[(8142, False)]["activation_bytes_estimate_fp32"]


def test_the_gpu_checks_prompt_tuning_section_times_the_coop_step_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    _one_thread(lambda: _load("gpu_check").main(["--device", "cpu", "--out", str(out), "--clip", "tiny", "--steps", "1",
                                                 "--prompt-classes", "3,5", "--sections", "prompt_tuning"]))
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    assert set(report["results"]["prompt_tuning"]) == {"3", "3_no_checkpointing", "5"}
    assert all(row["step_seconds"] > 0 for row in report["results"]["prompt_tuning"].values())
