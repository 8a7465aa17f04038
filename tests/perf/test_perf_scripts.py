"""benchmarks/perf/text_encoding.py and gpu_check.py run end to end on tiny sizes on the CPU
(no timings checked: only that every number comes out and the classifiers agree)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, PERF / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_text_classifier_benchmark_agrees_with_open_clip(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        results = _load("text_encoding").main(["--backbone", "tiny", "--sets", "imagenet:6:3,inat:20:2",
                                               "--repeats", "1", "--threads", "1", "--json", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    assert "imagenet 6 classes (est. from 3)" in capsys.readouterr().out
    assert set(results) == {"imagenet_6", "inat_20"} and results["inat_20"]["estimated"]
    assert all(entry["max_abs_difference"] < 1e-5 and entry["speedup"] > 0 for entry in results.values())
    assert json.loads((tmp_path / "t.json").read_text())["results"] == json.loads(json.dumps(results))


@pytest.mark.slow  # every section of the GPU check: outside the inner loop
def test_the_gpu_check_runs_its_sections_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _load("gpu_check").main(["--device", "cpu", "--out", str(out), "--backbones", "tiny", "--clip", "tiny",
                                 "--batch", "2", "--phase-a-batch", "4", "--steps", "1", "--text-classes", "2",
                                 "--jpegs", "2", "--sections", "extraction,phase_a,decoder,text_classifier,jpeg"])
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["errors"] == {} and set(report["results"]) == {"extraction", "phase_a", "decoder",
                                                                 "text_classifier", "jpeg"}
    assert report["results"]["text_classifier"]["fp32"]["max_abs_difference"] < 1e-5
    jpeg = report["results"]["jpeg"]  # ltbench's gpu_jpeg path, on the CPU decoder here
    assert jpeg["ltbench_gpu_jpeg_device"] == "cpu" and jpeg["ltbench_gpu_jpeg_max_abs_difference_vs_pillow"] < 0.02


def test_the_loader_benchmark_reads_every_image_through_each_path(tmp_path):
    threads = torch.get_num_threads()
    try:
        results = _load("loader").main(["--images", "8", "--workers", "0", "--batch-size", "4", "--size", "32",
                                        "--repeats", "1", "--json", str(tmp_path / "l.json")])
    finally:
        torch.set_num_threads(threads)
    assert set(results) == {"ltbench (0 workers)", "ltbench jpeg_draft (0 workers)",
                            "torchvision ImageFolder (0 workers)"}
    assert all(value > 0 for value in results.values())
