"""benchmarks/perf/gpu_session.sh, the prepared device session of issue 27: its plan (the steps
in order, with their commands and timeouts, under $OUT), its argument handling, and one short
step for real on the CPU, passing and failing. (Its full CPU rehearsal, --device cpu --small,
takes over a minute: gpu_smoke.sh's own test already runs the longest step.)"""
import os
import subprocess

import pytest


@pytest.fixture
def session(repo_root, tmp_path):
    def run(*args, out=None):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(out or tmp_path / "device-out")}
        return subprocess.run(["bash", str(repo_root / "benchmarks" / "perf" / "gpu_session.sh"), *args],
                              capture_output=True, text=True, env=env, timeout=300)
    return run


def test_the_plan_runs_smoke_check_ballad_and_lift_under_out(session, tmp_path):
    result = session("--dry-run")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "device-out"
    plan = [line for line in result.stdout.splitlines() if line.startswith("plan ")]
    assert [line.split()[1] for line in plan] == ["smoke", "check", "ballad", "lift"]
    assert f"results in {out}, under 570 s" in result.stdout
    assert f"bash benchmarks/perf/gpu_smoke.sh --device cuda --out {out}/smoke" in plan[0]
    assert f"bash benchmarks/perf/gpu_check.sh {out}/gpu_check.json --device cuda" in plan[1]
    for line, method in zip(plan[2:], ("ballad", "lift")):
        assert line.endswith(f"ltbench run --method {method} --dataset digits_lt --backbone ViT-B-16:none "
                             f"--device cuda --out {out}/results --no-progress")
    assert sum(int(line.split("timeout ")[1].split(" s")[0]) for line in plan) < 570
    assert not (out / "session.txt").exists()  # a dry run runs nothing


def test_the_cpu_rehearsal_plan_uses_the_small_sizes(session, tmp_path):
    result = session("--device", "cpu", "--small", "--dry-run", "--out", str(tmp_path / "elsewhere"))
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    assert f"--out {tmp_path / 'elsewhere'}/smoke" in plan and "--device cuda" not in plan
    assert "--backbone tiny --device cpu" in plan and "ViT-B-16" not in plan
    assert "--backbones tiny --clip tiny" in plan and "phase_a.epochs=2" in plan


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--device", "tpu"], "--device tpu: cuda, cuda:N or cpu"),
    (["--steps", "smoke,train"], "unknown step 'train'"),
    (["--timeout-s", "soon"], "One prepared GPU session"),
])
def test_bad_arguments_are_refused(session, args, message):
    result = session(*args, "--dry-run")
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow  # runs the session's steps: outside the inner loop
def test_a_step_runs_for_real_and_a_failing_step_fails_the_session(session, tmp_path):
    out = tmp_path / "rehearsal"
    result = session("--device", "cpu", "--small", "--steps", "lift", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS lift (exit 0, ")
    assert (out / "session.txt").read_text().startswith("PASS lift") and list((out / "results").rglob("lift__*.json"))
    result = session("--device", "cuda", "--steps", "lift", "--out", str(out))  # no GPU here: the run refuses
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("FAIL lift (exit 2, ")
    assert "CUDA is not available" in (out / "lift.err").read_text()
