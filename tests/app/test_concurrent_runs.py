"""Identical runs started together with one --out and one cache all finish with the same
metrics (issue 13, item 8): the run lock serialises them, and a run that waited uses the record
its twin wrote."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # three runs in fresh processes, per method: outside the inner loop

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.parametrize("method, options", [
    ("linear_probe", ["train.epochs=3"]),
    ("decoder_bs", ["stage1.iterations=20", "stage2.iterations=10"]),
])
def test_three_identical_runs_started_together_all_finish_alike(tmp_path, method, options):
    out, cache = tmp_path / "results", tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "LTBENCH_CACHE": str(cache)}
    command = [sys.executable, "-m", "ltbench", "run", "--method", method, "--dataset", "digits_lt", "--out", str(out),
               "--no-progress", "--cfg-options", *options]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, stderr) in zip(runs, results):
        assert run.returncode == 0, stderr
        assert "Traceback" not in stderr
    records = [Path(stdout.strip().splitlines()[-1].removeprefix("record: ")) for stdout, _ in results]
    assert len(set(records)) == 1
    metrics = {json.dumps(json.loads(path.read_text())["metrics"], sort_keys=True) for path in records}
    assert len(metrics) == 1
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()]  # no temp files left
