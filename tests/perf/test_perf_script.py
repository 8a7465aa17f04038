"""benchmarks/perf/run_perf.py runs end to end on tiny sizes and prints every row (no timings checked)."""
import importlib.util
import json

import torch

ROWS = ("ltbench image_features, cold cache", "plain open_clip + DataLoader (0 workers)", "ratio ltbench / plain",
        "image_features again (cache hit, no encoding)", "epoch on cached features", "epoch re-encoding every batch",
        "speed-up of the cache", "3 classes x 80 templates", "5 classes x 80 templates")


def test_perf_script_prints_every_measurement(tmp_path, capsys, repo_root):
    script_path = repo_root / "benchmarks" / "perf" / "run_perf.py"
    spec = importlib.util.spec_from_file_location("run_perf", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "perf.json"
    threads = torch.get_num_threads()
    try:  # one thread: quick on a machine whose cores are busy with other work
        script.main(["--backbone", "tiny", "--device", "cpu", "--images", "48", "--image-size", "16",
                     "--classes", "5", "--batch-size", "16", "--repeats", "1", "--probe-epochs", "2",
                     "--text-classes", "3,5", "--threads", "1", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert printed.startswith("ltbench perf: tiny on cpu")
    rows = {line.split("|")[2].strip(): line for line in printed.splitlines() if line.startswith("| ")}
    assert set(ROWS) <= set(rows)
    assert "(RSS)" in rows["epoch on cached features"]
    results = json.loads(out.read_text())["results"]
    assert {"ltbench_images_per_second", "plain_images_per_second", "extraction_ratio", "cache_hit_seconds",
            "epoch_cached_seconds", "epoch_reencode_seconds", "epoch_speedup", "text_classifier_3_seconds",
            "text_classifier_5_seconds"} == set(results)
    assert all(value > 0 for value in results.values())
