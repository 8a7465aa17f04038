"""benchmarks/perf/scale.py: the real-size rehearsal, end to end on a sliver of Places-LT (every
stage, each in its own process), and the shapes it lays out (no timing checked)."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def scale(repo_root):
    spec = importlib.util.spec_from_file_location("scale", repo_root / "benchmarks" / "perf" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shape", ["imagenet", "inat"])
def test_the_train_profile_has_the_datasets_size_and_extremes(scale, shape):
    classes, total, largest, smallest = scale.PROFILES[shape]
    counts = scale.pareto_profile(classes, total, largest, smallest)
    assert len(counts) == classes and counts.sum() == total
    assert counts[0] == largest and counts[-1] == smallest and np.all(np.diff(counts) <= 0)


def test_the_shapes_lay_out_the_real_files_and_a_drawn_train_split(scale, real_splits):
    dataset, files, extras = scale.layout("imagenet", real_splits, 0.01)
    assert dataset == "imagenet_lt" and set(extras) == {"classnames.txt"}
    assert len(files["ImageNet_LT_test.txt"]) == 1000 and len(files["ImageNet_LT_val.txt"]) == 1000  # 1 a class
    train = files["ImageNet_LT_train.txt"]
    labels = np.bincount([label for _, label in train], minlength=1000)
    assert labels.max() == round(1280 * 0.01) and labels.min() == 1 and len({path for path, _ in train}) == len(train)
    dataset, files, extras = scale.layout("inat", real_splits, 1.0)
    assert dataset == "inat2018" and len(files["iNaturalist18_val.txt"]) == 24_426
    assert len(files["iNaturalist18_train.txt"]) == 437_513 and "categories.json" in extras


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
def test_every_stage_runs_on_a_sliver_of_places_lt(scale, repo_root, real_splits, tmp_path):
    out = tmp_path / "scale.json"
    command = [sys.executable, str(repo_root / "benchmarks" / "perf" / "scale.py"), "--shape", "places", "--scale",
               "0.001", "--work", str(tmp_path / "work"), "--splits", str(real_splits), "--decoder-steps", "1",
               "--prompt-steps", "1", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    numbers = json.loads(out.read_text())
    rows = {row["stage"]: row for row in numbers["rows"]}
    assert list(rows) == list(scale.STAGES)
    assert numbers["sizes"] == {"train": numbers["dataset"]["splits"]["Places_LT_train.txt"], "val": 365,
                                "test": 365, "evaluated": 730}
    for row in rows.values():
        assert row["seconds"] > 0 and row["peak_rss"] > 100e6 and row["images_per_second"] > 0
    assert rows["zeroshot"]["disk"]["logits"] > 0 and rows["linear_probe"]["disk"]["cache"] > 0
    assert rows["linear_probe_warm"]["disk"]["cache"] == 0  # its features come from the cache
    assert rows["plot"]["disk"]["figures"] > 0 and rows["report"]["disk"]["figures"] > 0
    assert "| decoder " in done.stdout and "| report " in done.stdout
    # Prompt tuning trains on another train split file: its record is not a row beside the others.
    results = tmp_path / "work" / "places-0.001"
    assert [path.name.split("__")[0] for path in (results / "results-prompt-tuning" / "runs").rglob("*.json")] == ["prompt_tuning"]
    assert not list((results / "results").rglob("prompt_tuning*.json"))
    # A second call reuses the images.
    said = []
    described = scale.build_dataset("places", 0.001, tmp_path / "work", real_splits, 32, said.append)
    assert said[0].startswith("reusing") and described == numbers["dataset"]



def test_the_growth_tables_compare_the_first_and_last_shape(scale, tmp_path, capsys):
    def result(dataset, classes, evaluated, seconds, images):
        rows = [{"stage": "zeroshot", "seconds": seconds, "peak_rss": 1e9, "images": images,
                 "disk": dict.fromkeys(scale.DISK, 1000)}]
        return {"dataset": {"dataset": dataset, "scale": 1, "classes": classes}, "sizes": {"evaluated": evaluated},
                "rows": rows}

    files = []
    for name, numbers in (("a", result("places_lt", 365, 100, 2.0, 100)), ("b", result("inat2018", 8142, 50, 20.0, 50))):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(numbers))
    assert scale.main(["--growth", *map(str, files)]) == 0
    printed = capsys.readouterr().out
    assert "2.0 s / 1.0 GB / 5.0 kB" in printed and "20.0 s / 1.0 GB / 5.0 kB" in printed
    row = next(line for line in printed.splitlines()[4:] if line.startswith("| zeroshot"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:5] == ["10.0x", "0.5x", f"{8142 * 50 / (365 * 100):.1f}x", "1.00x"]
