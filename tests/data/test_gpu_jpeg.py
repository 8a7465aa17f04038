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


def test_the_fingerprint_says_whether_gpu_jpeg_decoded():
    assert SPEC.fingerprint()["gpu_jpeg"] is False
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


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
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


def _reject_cmyk_like_nvjpeg(monkeypatch):
    """torchvision's decode_jpeg as nvJPEG behaves: a CMYK / YCCK JPEG fails the call (a batched
    call as a whole); every other JPEG decodes as before. Returns the list of rejected calls."""
    import io

    import torchvision.io

    real, rejected = torchvision.io.decode_jpeg, []

    def is_cmyk(blob):
        try:
            return Image.open(io.BytesIO(blob.numpy().tobytes())).mode == "CMYK"
        except OSError:  # a broken file: the real decoder's own error
            return False

    def device_decoder(input, *args, **kwargs):
        blobs = input if isinstance(input, list) else [input]
        if any(is_cmyk(blob) for blob in blobs):
            rejected.append(len(blobs))
            raise RuntimeError("nvjpegDecode failed: NVJPEG_STATUS_JPEG_NOT_SUPPORTED (simulated)")
        return real(input, *args, **kwargs)

    monkeypatch.setattr(torchvision.io, "decode_jpeg", device_decoder)
    return rejected


def _cmyk_folder(tmp_path, folder_dataset):
    """A folder_lt split of 8 JPEGs whose image 1 of class 0 is saved as a CMYK JPEG by Pillow."""
    options = folder_dataset(tmp_path, per_class=4, suffix=".jpg", pixels=_pixels)
    split = build_dataset(options).split("train")
    cmyk = split.image_path(1)
    Image.fromarray(_pixels(0, 1)).convert("CMYK").save(cmyk, "JPEG", quality=90)
    assert Image.open(cmyk).mode == "CMYK"
    return split, cmyk


def test_a_jpeg_the_gpu_decoder_rejects_is_decoded_by_pillow_that_file_alone(tmp_path, folder_dataset,
                                                                             monkeypatch):
    split, cmyk = _cmyk_folder(tmp_path, folder_dataset)
    rejected = _reject_cmyk_like_nvjpeg(monkeypatch)
    spec = TransformSpec(**{**SPEC.__dict__, "gpu_jpeg": True})
    loader = image_loader(split, spec, batch_size=5, device="cpu")
    images = torch.cat([images for images, _ in loader])
    # The batch with the CMYK file was rejected whole, then its one CMYK file alone.
    assert rejected == [5, 1]
    assert loader.decoded_by_pillow == [f"{cmyk} (image 2 of {split.list_file})"]
    pillow = _pil_batch(split)
    assert images.shape == (8, 3, 32, 32)
    assert torch.equal(images[1], pillow[1])  # Pillow's CMYK conversion, as the Pillow loader does it
    assert (images - pillow).abs().max() <= TOLERANCE


def test_an_extraction_logs_and_records_how_many_files_pillow_decoded(tmp_path, folder_dataset, monkeypatch, capsys):
    from ltbench.engine.cache import ArrayCache
    from ltbench.engine.context import RunContext
    from ltbench.engine.features import encode_split

    split, cmyk = _cmyk_folder(tmp_path, folder_dataset)
    _reject_cmyk_like_nvjpeg(monkeypatch)
    ctx = RunContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path / "work",
                     cache=ArrayCache(tmp_path / "cache"), progress=False, gpu_jpeg=True)
    spec = ctx.image_transform(SPEC)
    means = encode_split(split, ctx, 3, lambda images: images.mean(dim=(2, 3)), transform=spec)
    assert means.shape == (8, 3)
    assert ctx.outputs.details["gpu_jpeg"] == {"decoded_by_pillow": {"train": 1}}
    log = capsys.readouterr().err
    assert "gpu_jpeg: 1 of 8 images of train decoded by Pillow" in log and str(cmyk) in log


def test_a_file_neither_decoder_reads_is_still_an_error_naming_it(tmp_path, monkeypatch):
    _reject_cmyk_like_nvjpeg(monkeypatch)
    good = tmp_path / "good.jpg"
    Image.fromarray(_pixels(0, 0)).save(good)
    broken = tmp_path / "broken_cmyk.jpg"
    Image.fromarray(_pixels(0, 0)).convert("CMYK").save(broken, "JPEG")
    broken.write_bytes(broken.read_bytes()[:300])  # cut short: neither decoder reads it
    from ltbench.core.errors import UserError

    with pytest.raises(UserError, match="broken_cmyk.jpg .*gpu_jpeg: .*; Pillow: "):
        decode_payloads([read_payload(good), read_payload(broken)], "cpu", [str(good), str(broken)])
