"""gpu_jpeg (issue 18): file JPEGs read by the loader workers, decoded a batch at a time with
torchvision's decode_jpeg on the loader's device and transformed there. On the CPU the same code
runs with device="cpu", against the Pillow pipeline; runs refuse the setting without CUDA."""
import numpy as np
import pytest
import torch
from PIL import Image

from ltbench.data import build_dataset
from ltbench.data.jpeg_decode import decode_payloads, read_payload, transform_images
from ltbench.data.loading import image_loader
from ltbench.data.transforms import TransformSpec

SPEC = TransformSpec(size=32, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28))
# torchvision and Pillow each bundle their own libjpeg-turbo; here they decode identically
# (measured max |diff| 0). The bound allows one grey level of decoder difference (1 / 255 / std).
TOLERANCE = 1 / 255 / min(SPEC.std) + 1e-6


def _pixels(label, index):
    # Three image sizes, so a batch holds several size groups (one transform call each).
    height, width = [(40, 48), (75, 50), (33, 33)][index % 3]
    rng = np.random.default_rng(label * 10 + index)
    base = rng.integers(0, 256, (1, 1, 3))
    return np.clip(base + rng.integers(-40, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _pil_batch(split):
    transform = SPEC.pil_transform()
    return torch.stack([transform(Image.open(split.image_path(row))) for row in range(len(split))])


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("workers", [0, 2])
def test_batched_decode_on_the_cpu_matches_the_pillow_pipeline(tmp_path, folder_dataset, suffix, workers):
    split = build_dataset(folder_dataset(tmp_path, per_class=4, suffix=suffix, pixels=_pixels)).split("train")
    spec = TransformSpec(**{**SPEC.__dict__, "gpu_jpeg": True})
    loader = image_loader(split, spec, batch_size=5, num_workers=workers, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    images = torch.cat([images for images, _ in batches])
    labels = torch.cat([labels for _, labels in batches])
    assert labels.tolist() == split.labels.tolist()
    difference = (images - _pil_batch(split)).abs()
    assert images.shape == (8, 3, 32, 32) and difference.max() <= TOLERANCE, difference.max()
    # A PNG is not a JPEG: Pillow decodes it in the worker (the CPU fallback), exactly.
    if suffix == ".png":
        assert read_payload(split.image_path(0)).dim() == 3 and difference.max() == 0


def test_the_fingerprint_says_gpu_jpeg_only_when_set():
    assert "gpu_jpeg" not in SPEC.fingerprint()
    assert TransformSpec(**{**SPEC.__dict__, "gpu_jpeg": True}).fingerprint()["gpu_jpeg"] is True


def test_a_broken_jpeg_in_a_batch_is_an_error_naming_it(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_pixels(0, 0)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:200])
    from ltbench.core.errors import UserError

    with pytest.raises(UserError, match="broken.jpg"):
        transform_images(decode_payloads([read_payload(good), read_payload(broken)], "cpu",
                                         [str(good), str(broken)]), SPEC)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_a_run_without_cuda_refuses_gpu_jpeg_before_any_work(run_cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
                                "--out", out, "--cfg-options", "gpu_jpeg=true")
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in stdout + err, err
    assert "gpu_jpeg=true" in lines[0] and "no CUDA GPU" in lines[0] and "gpu_jpeg=false" in lines[0]
    assert not out.exists()  # refused before --out was even made


def test_gpu_jpeg_on_the_cpu_device_is_refused_and_a_non_boolean_too(run_cli, tmp_path):
    base = ["run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress", "--out", tmp_path / "o"]
    code, _, err = run_cli(*base, "--device", "cpu", "--cfg-options", "gpu_jpeg=true")
    assert code != 0 and "gpu_jpeg=true" in err and "gpu_jpeg=false" in err, err
    code, _, err = run_cli(*base, "--cfg-options", "gpu_jpeg=yes please")
    assert code != 0 and "gpu_jpeg='yes please'" in err and "true or false" in err, err
