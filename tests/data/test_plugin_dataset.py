"""The README's "Adding a dataset" Python example, as an outside package: installed on the path
with an `ltbench.datasets` entry point, it is listed, checked and run on by a fresh ltbench."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ltbench

# One interpreter runs the three commands (an interpreter start costs seconds): each prints its
# exit status after a marker, so the test reads every command's output apart.
COMMANDS = [
    ["list", "datasets"],
    ["data", "check", "toy_shapes_lt"],
    ["run", "--method", "linear_probe", "--dataset", "toy_shapes_lt", "--backbone", "tiny", "--no-progress",
     # Features of the random tiny CLIP need standardising, as digits_lt's linear probe does.
     "--cfg-options", "head.standardize=true", "train.lr=0.01", "train.epochs=30"],
]
DRIVER = """
import json, sys
from ltbench.app.cli import main
for arguments in json.loads(sys.argv[1]):
    print("=== " + " ".join(arguments), flush=True)
    code = main(arguments)
    print("=== exit " + str(code), flush=True)
"""


def _example(readme: Path, fence: str, marker: str) -> str:
    blocks = re.findall(rf"```{fence}\n(.*?)```", readme.read_text(), flags=re.S)
    return next(block for block in blocks if marker in block)


def _install(site: Path, readme: Path):
    """The README's module as my_package/shapes.py, and the metadata pip would write for a package
    whose pyproject.toml holds the README's entry-point table."""
    package = site / "my_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text(_example(readme, "python", "DATASETS.register_module"))
    info = site / "my_package-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    # TOML's `[project.entry-points."G"]` and `name = "module"` are `[G]` and `name = module` there.
    table = _example(readme, "toml", '"ltbench.datasets"')
    lines = table[table.index("[project.entry-points."):].splitlines()
    (info / "entry_points.txt").write_text("\n".join(["[ltbench.datasets]"] + [line.replace('"', "")
                                                                              for line in lines[1:]]) + "\n")


@pytest.mark.slow  # an outside package and its runs: outside the inner loop
def test_readme_dataset_example_runs_from_an_outside_package(tmp_path, repo_root):
    readme = repo_root / "README.md"
    code = _example(readme, "python", "DATASETS.register_module")
    assert len(code.strip().splitlines()) <= 32
    assert _example(repo_root / "docs" / "adding-a-dataset.md", "python", "DATASETS.register_module") == code
    site = tmp_path / "site"
    _install(site, readme)
    # The package first, then the ltbench under test (this checkout or the installed one).
    path = [str(site), str(Path(ltbench.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(part for part in path if part),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(COMMANDS)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    outputs = re.findall(r"^=== (.*?)\n(.*?)^=== exit (\d+)$", result.stdout, flags=re.S | re.M)
    assert [int(code) for _, _, code in outputs] == [0, 0, 0], result.stdout + result.stderr
    listing, check, _ = (text for _, text, _ in outputs)

    assert re.search(r"^toy_shapes_lt +Generated shapes \(square, disc, cross\): 200 / 40 / 8 training images",
                     listing, flags=re.M)
    assert "imagenet_lt" in listing and "digits_lt" in listing
    rows = {line.split()[0]: line.split() for line in check.splitlines() if line.split()[:1] in (["train"], ["test"])}
    # split, images, classes, max, min, imbalance, many, medium, few, missing (in memory)
    assert rows["train"][:9] == ["train", "248", "3", "200", "8", "25.0", "1", "1", "1"]
    assert rows["test"][:3] == ["test", "90", "3"]

    record = json.loads(next((work / "results" / "runs" / "toy_shapes_lt").glob("*.json")).read_text())
    assert record["dataset"] == "toy_shapes_lt" and record["class_names"] == ["square", "disc", "cross"]
    assert record["class_counts"] == [200, 40, 8] and record["metrics"]["num_images"] == 90
    # The shapes are told apart by a linear probe even on the random tiny CLIP's features (62.2
    # when written): far above the 33.3 of chance, which labels that did not reach the run give.
    assert record["metrics"]["overall"] > 50, record["metrics"]["overall"]
