"""The wheel: built from this checkout, installed non-editable into a fresh virtualenv, it runs
the README's quick start from an empty folder (configs and plug-ins ship inside it)."""
import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest


def _run(*args, cwd=None, env=None):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory, repo_root):
    """bin/ of a virtualenv holding the wheel. Its dependencies (torch, open_clip, ...) come
    from this interpreter's site-packages through a plain path entry, which Python does not
    scan for .pth files: an editable ltbench installed here stays invisible there."""
    root = tmp_path_factory.mktemp("wheel")
    # A copy of the checkout, links kept: building writes build/ and *.egg-info beside the sources.
    source = root / "source"
    shutil.copytree(repo_root, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "build", "dist", "results", "*.egg-info", "__pycache__"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source)
    wheel = next((root / "dist").glob("ltbench-*.whl"))
    environment = root / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    own_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (own_site / "ltbench_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", own_site, wheel)
    return environment / "bin", wheel


def test_the_wheel_holds_one_import_name_with_configs_and_plugins(installed_wheel):
    import zipfile

    _, wheel = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"ltbench"}
    for expected in ("ltbench/benchmarks/defaults.yaml", "ltbench/benchmarks/datasets/digits_lt.yaml",
                     "ltbench/benchmarks/methods/ballad.yaml", "ltbench/benchmarks/reported.yaml",
                     "ltbench/methods/zeroshot_clip.py", "ltbench/models/configs/ltbench-tiny.json"):
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ltbench = ltbench.app.cli:main" in entry_points


def test_quick_start_runs_from_an_empty_folder(installed_wheel, tmp_path, repo_root):
    bin_dir, _ = installed_wheel
    env = {**os.environ, "LTBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("LTBENCH_BENCHMARKS", None)
    env.pop("PYTHONPATH", None)  # a PYTHONPATH naming the checkout would hide the installed wheel
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(bin_dir / "python", "-c", "import ltbench, ltbench.methods; print(ltbench.__file__)", cwd=empty, env=env)
    assert str(repo_root) not in where
    # `python -m ltbench` is what the `ltbench` script runs (its entry point is checked above).
    out = _run(bin_dir / "python", "-m", "ltbench", "run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
               cwd=empty, env=env)
    assert "zeroshot_clip on digits_lt (tiny" in out
    record = json.loads(next((empty / "results" / "runs" / "digits_lt").glob("*.json")).read_text())
    assert record["method"] == "zeroshot_clip" and 0 <= record["metrics"]["overall"] <= 100
