"""CPU paths: channels_last for convolutional backbones, fused optimizers, and Pillow's JPEG
draft mode as an opt-in transform setting that the cache keys and the config hash record."""
import dataclasses

import numpy as np
import pytest
import torch

from ltbench.data.transforms import TransformSpec
from ltbench.engine.trainer import build_optimizer, optimizer_implementation
from ltbench.engine.transfer import uses_channels_last


def test_convolutional_backbones_run_in_channels_last_on_the_cpu_too():
    resnet = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    patch_embedding = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert uses_channels_last(resnet, torch.device("cpu")) and uses_channels_last(resnet, torch.device("cuda"))
    assert not uses_channels_last(patch_embedding, torch.device("cpu"))  # a ViT's single conv: no gain
    assert uses_channels_last(patch_embedding, torch.device("cuda"))
    assert not uses_channels_last(resnet, torch.device("meta"))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fused_optimizers_take_the_same_steps(optimizer, monkeypatch):
    from ltbench.engine import trainer

    def train(fused):
        torch.manual_seed(0)
        model = torch.nn.Linear(16, 5)
        cfg = {"optimizer": optimizer, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
               "weight_decay_1d": False}
        if not fused:  # torch's default implementation
            monkeypatch.setattr(trainer, "optimizer_implementation", lambda params: {})
        opt = build_optimizer(list(model.parameters()), cfg)
        monkeypatch.undo()
        assert bool(opt.defaults.get("fused")) == fused
        inputs = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
        for _ in range(5):
            opt.zero_grad()
            model(inputs).square().mean().backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.allclose(train(True), train(False), atol=1e-6)
    assert optimizer_implementation([torch.zeros(2, dtype=torch.float32)]) == {"fused": True}
    assert optimizer_implementation([torch.zeros(2, dtype=torch.complex64)]) == {}


def _jpeg(path, size):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).resize(size, Image.BILINEAR).save(path, quality=90)
    return path


def test_jpeg_draft_decodes_large_jpegs_at_a_reduced_scale_and_is_recorded(tmp_path):
    from PIL import Image

    spec = TransformSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    draft = dataclasses.replace(spec, jpeg_draft=True)
    assert spec.fingerprint() != draft.fingerprint() and spec.fingerprint()["jpeg_draft"] is False
    large, small = _jpeg(tmp_path / "large.jpg", (200, 150)), _jpeg(tmp_path / "small.jpg", (60, 40))
    with Image.open(large) as image:
        draft.pil_transform().transforms[0](image)
        assert image.size == (50, 38)  # 1/4 scale: the short side 37.5 -> 38 >= 32
    for path in (large, small):
        with Image.open(path) as image:
            plain = spec.pil_transform()(image)
        with Image.open(path) as image:
            drafted = draft.pil_transform()(image)
        assert plain.shape == drafted.shape == (3, 32, 32)
        if path == small:  # under twice the target: decoded as before
            assert torch.equal(plain, drafted)
        else:
            assert not torch.equal(plain, drafted) and (plain - drafted).abs().mean() < 0.2


def test_jpeg_draft_is_in_the_config_hash():
    from ltbench.config import RunRequest, config_hash, resolve

    plain = resolve(RunRequest("zeroshot_clip", "digits_lt"))
    draft = resolve(RunRequest("zeroshot_clip", "digits_lt", options=(("jpeg_draft", True),)))
    assert plain["jpeg_draft"] is False and config_hash(draft) != config_hash(plain)


def test_the_run_context_applies_jpeg_draft_to_eval_transforms(tmp_path):
    from ltbench.engine.cache import ArrayCache
    from ltbench.engine.context import RunContext

    spec = TransformSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ctx = RunContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path, cache=ArrayCache(tmp_path))
    assert ctx.image_transform(spec) is spec
    assert dataclasses.replace(ctx, jpeg_draft=True).image_transform(spec).jpeg_draft
