"""The one-way layers (pyproject.toml's [tool.importlinter] contracts) are checked by
.ci/lint-imports, which lays ltbench out as installed (methods/ and benchmarks/ under ltbench/)
for import-linter: the contracts hold on this checkout, and a plug-in reaching past the API breaks
one."""
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed "
                                "(pip install -e '.[test]')")


def _lint(root):
    return subprocess.run([sys.executable, str(root / ".ci" / "lint-imports"), "--no-logo"], capture_output=True,
                          text=True, timeout=120)


def test_the_contracts_hold_with_the_plugins_in_the_graph(repo_root):
    result = _lint(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_plugin_importing_the_framework_past_the_api_breaks_a_contract(repo_root, tmp_path):
    checkout = tmp_path / "checkout"
    for part in ("ltbench", "methods", "benchmarks", ".ci"):
        shutil.copytree(repo_root / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "pyproject.toml", checkout)
    with open(checkout / "methods" / "zeroshot_clip.py", "a") as module:
        module.write("\nimport ltbench.engine.trainer  # past ltbench.api\n")
    result = _lint(checkout)
    assert result.returncode != 0
    assert "Method plug-ins import only the plug-in API (and each other's own package) BROKEN" in result.stdout
    assert "ltbench.methods.zeroshot_clip -> ltbench.engine.trainer" in result.stdout
