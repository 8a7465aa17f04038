"""benchmarks/perf/quick_commands.py times compare, plot, report and the sampler (the wall-clock
limits that were in the tests) on the quick start's runs; here on tiny sizes, no timing checked."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "perf" / "quick_commands.py"


@pytest.fixture
def script(monkeypatch):
    spec = importlib.util.spec_from_file_location("quick_commands", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # pin_threads sets them; monkeypatch restores them
    return module


@pytest.mark.slow  # every section, plots included: outside the inner loop
def test_every_section_is_timed_and_printed_beside_its_former_limit(script, quickstart_results, tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "numbers.json"
    numbers = script.main(["--results", str(quickstart_results), "--bootstrap", "200", "--sampler-labels", "3000",
                           "--sampler-classes", "300", "--threads", "1", "--repeats", "1", "--json", str(out)])
    torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert list(numbers["sections"]) == list(script.SECTIONS)
    for name, (what, budget) in script.SECTIONS.items():
        section = numbers["sections"][name]
        assert len(section["all_seconds"]) == 1 and section["best_seconds"] == min(section["all_seconds"]) > 0
        assert section["budget_seconds"] == budget
        assert f"of the former {budget:g} s limit)  {what}" in printed
    assert "load average" in printed and json.loads(out.read_text()) == numbers
    assert not (quickstart_results / "report").exists()  # figures and pages went to a temporary folder


def test_an_unknown_section_is_refused(script):
    with pytest.raises(SystemExit, match="unknown section"):
        script.main(["--only", "sampler,plots"])
