"""The torch / torchvision floors (issue 22, finding 9): SGD(fused=True) on the CPU and batched
decode_jpeg on CUDA need releases newer than the ones pyproject.toml used to allow; an older
install is refused in one line before any work, and pyproject states the same floors."""
import re
from pathlib import Path

import pytest

from ltbench.core import versions

ROOT = Path(__file__).resolve().parents[1]


def _floors():
    # The dependency lines of pyproject.toml (a regex: tomllib needs Python 3.11, ltbench 3.9).
    text = (ROOT / "pyproject.toml").read_text()
    return dict(re.findall(r'^\s*"(torch|torchvision)>=([\d.]+)",', text, flags=re.M))


def test_pyproject_floors_are_the_releases_the_code_needs():
    assert _floors() == {"torch": versions.MINIMUM_TORCH, "torchvision": versions.MINIMUM_TORCHVISION}
    assert versions.version_problems("2.4.0", "0.20.0") == []
    assert versions.version_problems("2.14.1+cu130", "0.29.1+cu130") == []


def test_older_releases_are_named():
    problems = versions.version_problems("2.3.1+cu121", "0.18.1")
    assert len(problems) == 2 and "torch 2.3.1+cu121" in problems[0] and "fused" in problems[0]
    assert "torchvision 0.18.1" in problems[1] and "decode_jpeg" in problems[1]


@pytest.mark.parametrize("module, old", [("torch", "2.1.2"), ("torchvision", "0.16.0")])
def test_a_run_with_an_older_release_is_one_line_before_any_work(run_cli, tmp_path, monkeypatch, module, old):
    import importlib

    monkeypatch.setattr(importlib.import_module(module), "__version__", old)
    out = tmp_path / "out"
    code, stdout, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
                                "--out", out)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in stdout + err, err
    assert f"{module} {old}" in lines[0] and "pip install" in lines[0]
    assert not out.exists()
