"""benchmarks/perf/text_encoding.py and gpu_check.py run end to end on tiny sizes on the CPU
(no timings checked: only that every number comes out and the classifiers agree)."""
import importlib.util
import io
import json
import os
import subprocess
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
                                 "--jpegs", "8", "--sections", "extraction,phase_a,decoder,text_classifier,jpeg"])
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["errors"] == {} and set(report["results"]) == {"extraction", "phase_a", "decoder",
                                                                 "text_classifier", "jpeg"}
    assert report["results"]["text_classifier"]["fp32"]["max_abs_difference"] < 1e-5
    # fp32 is fp32 for convolutions too: TF32 off in cuDNN as in cuBLAS while it is measured.
    fp32 = report["results"]["extraction"]["tiny"]["fp32"]
    assert fp32["tf32_matmul"] is False and fp32["tf32_cudnn"] is False
    assert torch.backends.cudnn.allow_tf32  # put back afterwards
    jpeg = report["results"]["jpeg"]  # ltbench's gpu_jpeg path, on the CPU decoder here
    assert jpeg["kinds"] == {"baseline": 6, "cmyk": 1, "progressive": 1}  # the realistic mix, a CMYK file in it
    assert jpeg["ltbench_gpu_jpeg_device"] == "cpu" and jpeg["ltbench_gpu_jpeg_max_abs_difference_vs_pillow"] < 0.02
    assert jpeg["ltbench_gpu_jpeg_cmyk_max_abs_difference_vs_pillow"] < 0.02


def test_the_gpu_check_mix_has_every_size_progressive_grey_and_one_cmyk():
    from PIL import Image

    mix = _load("gpu_check").jpeg_mix(50)
    kinds = [kind for _, kind, _ in mix]
    assert kinds.count("cmyk") == 1 and kinds.count("progressive") >= 5 and kinds.count("grey") == 2
    sizes = {Image.open(io.BytesIO(blob.numpy().tobytes())).size for blob, _, _ in mix}
    assert {(500, 375), (375, 500), (1600, 1200)} <= sizes and len(sizes) >= 5
    cmyk = next(blob for blob, kind, _ in mix if kind == "cmyk")
    assert Image.open(io.BytesIO(cmyk.numpy().tobytes())).mode == "CMYK"


@pytest.mark.slow  # every section of the GPU check: outside the inner loop
def test_the_gpu_check_script_prints_its_summary_when_a_section_fails(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run(["bash", str(PERF / "gpu_check.sh"), str(out), "--device", "cpu", "--sections",
                             "extraction,decoder", "--backbones", "NoSuchModel:none", "--batch", "2", "--steps", "1"],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert "gpu_check summary: 1 passed, 1 failed (extraction), 0 skipped on cpu" in lines
    assert lines[-1].startswith(f"gpu_check: wrote {out} (exit 1: some sections failed")
    assert "NoSuchModel" in json.loads(out.read_text())["errors"]["extraction"]


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
