"""benchmarks/perf/gpu_smoke.sh on the CPU, as CI runs it: every registered method passes on
digits_lt, deterministic mode gives bit-identical predictions, the CMYK dataset runs (Pillow),
the CUDA-only checks print SKIP; a failing check makes the exit status non-zero."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow  # every check of the smoke script: outside the inner loop
def test_the_smoke_check_passes_on_the_cpu(repo_root, tmp_path):
    out = tmp_path / "smoke"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(repo_root / "benchmarks" / "perf" / "gpu_smoke.sh"), "--device", "cpu",
                             "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # What a fresh `ltbench list methods` names (this process's registry also holds the methods
    # other tests register): every one of them ran.
    listed = subprocess.run([sys.executable, "-m", "ltbench", "list", "methods"], capture_output=True, text=True,
                            env=env, check=True).stdout
    methods = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert {"ballad", "lift", "zeroshot_clip"} <= set(methods)
    for method in methods:
        assert any(line.startswith(f"PASS method {method}: ") for line in lines), (method, result.stdout)
    for expected in ("PASS deterministic: two deterministic lift runs, bit-identical predictions",
                     "SKIP ddp: CUDA only (2 or more GPUs)", "SKIP cuda_contexts: CUDA only (2 or more GPUs)",
                     "SKIP gpu_jpeg: CUDA only: the CMYK dataset runs with Pillow below"):
        assert expected in lines, result.stdout
    assert any(line.startswith("PASS cmyk_jpeg (Pillow): ") for line in lines)
    report = json.loads((out / "smoke.json").read_text())
    assert report["device"] == "cpu" and {check["status"] for check in report["checks"]} == {"PASS", "SKIP"}
    assert len(list((out / "results" / "runs" / "digits_lt").glob("*.json"))) == len(methods)


def test_a_failing_check_fails_the_smoke_run(repo_root, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_smoke", repo_root / "benchmarks" / "perf" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    code = smoke.main(["--device", "cpu", "--out", str(tmp_path), "--checks", "methods", "--methods",
                       "no_such_method"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAIL method no_such_method: " in printed and "unknown method 'no_such_method'" in printed
    assert "0 of 1 checks passed or skipped, 1 failed (method no_such_method)" in printed
