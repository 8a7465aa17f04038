"""The README's "Adding a method" example, executed as written, runs end to end."""
import json
import re


def _example_code(readme):
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    return next(block for block in blocks if "METHODS.register_module" in block)


def test_readme_method_example_runs_and_reaches_the_table(run_cli, tmp_path, repo_root):
    readme = repo_root / "README.md"
    from ltbench.core import registry

    if "class_mean" not in registry.names(registry.METHODS):
        exec(compile(_example_code(readme), "README.md", "exec"), {"__name__": "readme_example"})
    assert len(_example_code(readme).strip().splitlines()) <= 32
    code, out, _ = run_cli("list", "methods")
    assert re.search(r"^class_mean +Nearest class mean", out, flags=re.M)

    results = tmp_path / "results"
    code, _, err = run_cli("run", "--method", "class_mean", "--dataset", "digits_lt", "--out", results,
                           "--no-progress", "--cfg-options", "scale=20")
    assert code == 0, err
    record = json.loads(next(results.rglob("*.json")).read_text())
    assert record["config"]["scale"] == 20
    # Class means of standardless random-init features still beat chance by far on digits.
    assert record["metrics"]["overall"] > 30
    code, out, _ = run_cli("table", "--results", results)
    assert code == 0 and "class_mean" in out
