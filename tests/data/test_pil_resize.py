"""The batch resize of in-memory images is PIL's, so CIFAR / digits see the pixels every reference
implementation (torchvision transforms on PIL images) feeds the model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ltbench.core.errors import UserError
from ltbench.data.pil_resize import pil_resize, resize_weights
from ltbench.data.transforms import TransformSpec

GREY_LEVELS = ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # mean, std: the output is in grey levels


def _images(count, height, width, channels=3, seed=0):
    shape = (count, height, width, channels) if channels else (count, height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _pil_reference(spec, images):
    return torch.stack([spec.pil_transform()(Image.fromarray(image)) for image in images])


def test_bicubic_weights_are_pils_a_minus_half_kernel():
    # 2 -> 4 px, first output pixel: centre 0.25, taps at 0.25 and 1.25 of the a = -0.5 cubic,
    # 111/128 and -9/128, normalised by their sum 102/128.
    weights = resize_weights(0, 2, 2, 4, "bicubic")[0]
    assert torch.allclose(weights[0], torch.tensor([37 / 34, -3 / 34], dtype=torch.float64))
    assert torch.allclose(weights.sum(dim=1), torch.ones(4, dtype=torch.float64))
    # Shrinking 4 -> 2 widens the kernel by 2 (antialiasing): every input pixel contributes.
    assert (resize_weights(0, 4, 4, 2, "bicubic")[0] != 0).all()


@pytest.mark.parametrize("side, size, channels", [(32, 224, 3), (8, 32, 3), (28, 224, 0), (96, 40, 3)])
def test_eval_batch_matches_pil_within_one_grey_level(side, size, channels):
    spec = TransformSpec(size, *GREY_LEVELS)
    images = _images(4, side, side, channels)
    batch, reference = spec.apply_batch(images), _pil_reference(spec, images)
    assert batch.shape == reference.shape == (4, 3, size, size)
    assert (batch - reference).abs().max() <= 1.0 + 1e-3
    if side < size:  # torch's own bicubic (a = -0.75) is several grey levels off: the test sees it
        torch_bicubic = F.interpolate(torch.from_numpy(images).float().reshape(4, side, side, -1)
                                      .permute(0, 3, 1, 2), size=(size, size), mode="bicubic",
                                      align_corners=False).clamp(0, 255)
        assert (torch_bicubic - reference[:, :torch_bicubic.shape[1]]).abs().max() > 2


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("height, width, size", [(40, 30, 24), (30, 47, 50), (17, 64, 20)])
def test_non_square_images_resize_and_crop_as_torchvision(interpolation, height, width, size):
    spec = TransformSpec(size, *GREY_LEVELS, interpolation)
    images = _images(2, height, width, seed=1)
    assert (spec.apply_batch(images) - _pil_reference(spec, images)).abs().max() <= 1.0 + 1e-3


def test_per_image_boxes_match_pil_crop_then_resize():
    images = _images(4, 48, 40, seed=2)
    # (top, left, height, width); the second and fourth shrink the height far more than the
    # width, which Pillow >= 13 resizes vertically first.
    boxes = torch.tensor([[0, 0, 48, 40], [3, 5, 44, 20], [10, 2, 12, 30], [0, 0, 48, 12]])
    out = pil_resize(torch.from_numpy(images).permute(0, 3, 1, 2).double(), boxes, (16, 16), "bicubic")
    for image, (top, left, height, width), result in zip(images, boxes.tolist(), out):
        crop = Image.fromarray(image).crop((left, top, left + width, top + height))
        expected = torch.from_numpy(np.array(crop.resize((16, 16), Image.BICUBIC))).permute(2, 0, 1)
        assert (result - expected).abs().max() <= 1.0


def test_squash_resizes_both_sides_without_a_crop():
    images = _images(2, 40, 30, seed=3)
    squash = TransformSpec(24, *GREY_LEVELS, resize_mode="squash")
    batch = squash.apply_batch(images)
    expected = torch.stack([torch.from_numpy(np.array(Image.fromarray(image).resize((24, 24), Image.BICUBIC)))
                            .permute(2, 0, 1).float() for image in images])
    assert batch.shape == (2, 3, 24, 24) and (batch - expected).abs().max() <= 1.0 + 1e-3
    assert (batch - _pil_reference(squash, images)).abs().max() <= 1.0 + 1e-3
    # 'shortest' crops 32 of the 40 rows instead: a different image.
    assert (TransformSpec(24, *GREY_LEVELS).apply_batch(images) - batch).abs().max() > 10
    assert squash.fingerprint() != TransformSpec(24, *GREY_LEVELS).fingerprint()
    with pytest.raises(UserError, match="resize_mode 'longest'"):
        TransformSpec(24, *GREY_LEVELS, resize_mode="longest")


def test_clip_eval_transform_follows_the_preprocess_cfg():
    from ltbench.models.factory import create_backbone

    tiny = create_backbone("tiny")
    assert tiny.eval_transform.resize_mode == "shortest"
    tiny.model.visual.preprocess_cfg = {**tiny.model.visual.preprocess_cfg, "resize_mode": "squash"}
    assert tiny.eval_transform.resize_mode == "squash"
