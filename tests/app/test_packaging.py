"""The packaging. methods/ and benchmarks/ sit at the top of the repository and become
ltbench.methods and ltbench.benchmarks through pyproject.toml's package-dir (no links under
ltbench/): the wheel, installed non-editable into a fresh virtualenv, runs the README's quick start
from an empty folder with the checkout's numbers; an editable install imports the plug-ins and reads
the configs from its checkout through setuptools' own finder; and a checkout on PYTHONPATH keeps its
own plug-ins even where another checkout is installed editable (ltbench/_checkout.py)."""
import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from ltbench import _checkout

# What a copy of the checkout leaves out: git, build outputs, results, and the tests (not packaged).
_NOT_PACKAGED = shutil.ignore_patterns(".git", "build", "dist", "results", "*.egg-info", "__pycache__",
                                       ".pytest_cache", "test-artifacts", "tests")


def _run(*args, cwd=None, env=None):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _virtualenv(folder: Path) -> Path:
    """A fresh virtualenv; its python. Its dependencies (torch, open_clip, setuptools, ...) come
    from this interpreter's site-packages through a plain path entry, which Python does not scan
    for .pth files: an editable ltbench installed here stays invisible there."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    own_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (own_site / "ltbench_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def _outside_env(tmp_path, **extra):
    """The environment of a command run as a user would, outside the checkout: no PYTHONPATH (one
    naming the checkout would hide the installed ltbench), a cache of its own, no network."""
    env = {**os.environ, "LTBENCH_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", **extra}
    env.pop("LTBENCH_BENCHMARKS", None)
    if "PYTHONPATH" not in extra:
        env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory, repo_root):
    """(python of a virtualenv holding the wheel, the wheel)."""
    root = tmp_path_factory.mktemp("wheel")
    # A copy of the checkout: building writes build/ and *.egg-info beside the sources.
    source = root / "source"
    shutil.copytree(repo_root, source, ignore=_NOT_PACKAGED)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source)
    wheel = next((root / "dist").glob("ltbench-*.whl"))
    python = _virtualenv(root / "venv")
    own_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", own_site, wheel)
    return python, wheel


@pytest.fixture(scope="module")
def editable_install(tmp_path_factory, repo_root):
    """(python of a virtualenv with a copy of the checkout installed editable, that copy)."""
    root = tmp_path_factory.mktemp("editable")
    checkout = root / "checkout"
    shutil.copytree(repo_root, checkout, ignore=_NOT_PACKAGED)
    python = _virtualenv(root / "venv")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-build-isolation",
         "-e", checkout)
    return python, checkout


@pytest.mark.slow  # builds and installs ltbench: outside the inner loop
def test_the_wheel_holds_one_import_name_with_every_plugin_and_config(installed_wheel, repo_root):
    _, wheel = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"ltbench"}
    # Every module of methods/ (packages below it included) and every config of benchmarks/, at
    # its mapped place: setup.py names the packages under the map, and none is listed by hand.
    expected = {f"ltbench/methods/{path.relative_to(repo_root / 'methods').as_posix()}"
                for path in (repo_root / "methods").rglob("*.py")}
    expected |= {f"ltbench/benchmarks/{path.relative_to(repo_root / 'benchmarks').as_posix()}"
                 for path in (repo_root / "benchmarks").rglob("*.yaml")}
    assert "ltbench/methods/ballad/method.py" in expected and "ltbench/benchmarks/datasets/digits_lt.yaml" in expected
    assert expected | {"ltbench/benchmarks/__init__.py", "ltbench/models/configs/ltbench-tiny.json",
                       "ltbench/_checkout.py"} <= names
    # The speed scripts are run from the checkout (python benchmarks/perf/...), not shipped.
    assert not any(name.startswith("ltbench/benchmarks/perf/") for name in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ltbench = ltbench.app.cli:main" in entry_points


@pytest.mark.slow  # builds and installs ltbench: outside the inner loop
def test_quick_start_from_an_empty_folder_gives_the_checkouts_numbers(installed_wheel, quickstart_results, tmp_path,
                                                                       repo_root):
    python, _ = installed_wheel
    env = _outside_env(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = json.loads(_run(python, "-c", "import json, ltbench.methods, ltbench.config as c; "
                                          "print(json.dumps([ltbench.methods.__file__, str(c.benchmarks_dir())]))",
                            cwd=empty, env=env))
    assert all(str(repo_root) not in path and "site-packages" in path for path in where), where
    # `python -m ltbench` is what the `ltbench` script runs (its entry point is checked above).
    out = _run(python, "-m", "ltbench", "run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
               cwd=empty, env=env)
    assert "zeroshot_clip on digits_lt (tiny" in out
    record = json.loads(next((empty / "results" / "runs" / "digits_lt").glob("*.json")).read_text())
    # The shipped configs are the checkout's (same config hash) and give the same numbers as the
    # same run from the checkout (tests/app/conftest.py's quick start, in this process).
    [reference] = [json.loads(path.read_text()) for path in (quickstart_results / "runs" / "digits_lt").glob("*.json")
                   if json.loads(path.read_text())["method"] == "zeroshot_clip"]
    assert record["config_hash"] == reference["config_hash"]
    for key in ("overall", "many", "medium", "few", "per_class_accuracy"):
        assert record["metrics"][key] == reference["metrics"][key], key


@pytest.mark.slow  # builds and installs ltbench: outside the inner loop
def test_an_editable_install_maps_methods_and_benchmarks_through_setuptools(editable_install, tmp_path):
    python, checkout = editable_install
    env = _outside_env(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    # Without ltbench's own checkout finder: the plug-ins, a package below them, and the configs
    # read through importlib.resources come from the checkout by setuptools' map alone.
    probe = ("import json, sys, ltbench, ltbench._checkout as k; "
             "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, k.CheckoutFinder)]; "
             "import ltbench.methods, ltbench.methods.ballad.method as b, ltbench.config as c; "
             "print(json.dumps([ltbench.__file__, ltbench.methods.__file__, b.__file__, str(c.benchmarks_dir())]))")
    package, methods, ballad, benchmarks = json.loads(_run(python, "-c", probe, cwd=empty, env=env))
    assert package == str(checkout / "ltbench" / "__init__.py")
    assert methods == str(checkout / "methods" / "__init__.py")
    assert ballad == str(checkout / "methods" / "ballad" / "method.py")
    assert benchmarks == str(checkout / "benchmarks")
    out = _run(python, "-m", "ltbench", "list", "methods", cwd=empty, env=env)
    assert "zeroshot_clip" in out and "ballad" in out


@pytest.mark.slow  # builds and installs ltbench: outside the inner loop
def test_a_checkout_on_the_path_keeps_its_own_plugins_beside_an_editable_install(editable_install, tmp_path,
                                                                                  repo_root):
    """The worktree case: this checkout on PYTHONPATH while another one is installed editable.
    Setuptools' finder of the other one would answer ltbench.methods with *its* methods/; the
    checkout finder answers first with this checkout's."""
    python, other = editable_install
    env = _outside_env(tmp_path, PYTHONPATH=str(repo_root))
    probe = ("import json, ltbench.methods, ltbench.config as c; "
             "print(json.dumps([ltbench.__file__, ltbench.methods.__file__, str(c.benchmarks_dir())]))")
    package, methods, benchmarks = json.loads(_run(python, "-c", probe, cwd=tmp_path, env=env))
    assert (package, methods, benchmarks) == (str(repo_root / "ltbench" / "__init__.py"),
                                              str(repo_root / "methods" / "__init__.py"), str(repo_root / "benchmarks"))
    assert str(other) not in methods


@pytest.mark.skipif(sys.version_info < (3, 11), reason="reads pyproject.toml with tomllib (Python 3.11+)")
def test_the_checkout_finder_maps_what_the_packaging_maps(repo_root):
    import tomllib

    package_dir = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert package_dir.pop("ltbench") == "ltbench"
    assert package_dir == _checkout.PACKAGE_DIRS
    assert not (repo_root / "ltbench" / "methods").exists() and not (repo_root / "ltbench" / "benchmarks").exists()
