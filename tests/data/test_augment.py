import numpy as np
import pytest
import torch
from PIL import Image

from ltbench.core.errors import UserError
from ltbench.data import augment
from ltbench.data.augment import AugmentSpec
from ltbench.data.base import ArraySplit, FileSplit
from ltbench.data.loading import augmented_loader
from ltbench.data.samplers import build_sampler
from ltbench.data.transforms import TransformSpec

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
NO_JITTER = (0.0, 0.0, 0.0, 0.0)


def _images(count, height=16, width=16, channels=3, seed=0):
    shape = (count, height, width, channels) if channels else (count, height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _augment(images, seed=0, **fields):
    spec = AugmentSpec(**{"size": 24, "mean": MEAN, "std": STD, **fields})
    return spec.apply_batch(images, torch.Generator().manual_seed(seed))


def test_apply_batch_shape_and_reproducibility():
    for images in (_images(5, 20, 28), _images(5, channels=0)):
        batch = _augment(images, seed=1, color_jitter=(0.4, 0.4, 0.4, 0.1))
        assert batch.shape == (5, 3, 24, 24) and batch.dtype == torch.float32
        assert torch.equal(batch, _augment(images, seed=1, color_jitter=(0.4, 0.4, 0.4, 0.1)))
        assert not torch.allclose(batch, _augment(images, seed=2, color_jitter=(0.4, 0.4, 0.4, 0.1)))


@pytest.mark.parametrize("side", [16, 24])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_identity_crop_is_the_eval_transform(side, interpolation):
    images = _images(3, side, side)
    batch = _augment(images, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                     color_jitter=NO_JITTER, interpolation=interpolation)
    reference = TransformSpec(24, MEAN, STD, interpolation).apply_batch(images)
    assert torch.allclose(batch, reference, atol=1e-4)


def test_flip_mirrors_about_half_of_the_images():
    images = _images(16, 24, 24)
    plain = TransformSpec(24, MEAN, STD).apply_batch(images)
    batch = _augment(images, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=True, color_jitter=NO_JITTER)
    mirrored = [torch.allclose(out, torch.flip(ref, dims=[-1]), atol=1e-4) for out, ref in zip(batch, plain)]
    unchanged = [torch.allclose(out, ref, atol=1e-4) for out, ref in zip(batch, plain)]
    assert all(m != u for m, u in zip(mirrored, unchanged))  # each image is one or the other
    assert 0 < sum(mirrored) < len(images)


def test_copies_of_one_image_get_different_crops():
    batch = _augment(np.repeat(_images(1, 32, 32), 6, axis=0), flip=False, color_jitter=NO_JITTER)
    flat = batch.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(6) for j in range(i + 1, 6))


def test_crop_boxes_follow_scale_and_ratio_inside_the_image():
    generator = torch.Generator().manual_seed(0)
    top, left, height, width = augment._crop_boxes(500, 30, 40, (0.3, 0.6), (0.75, 4 / 3), generator).T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= 30).all() and (left + width <= 40).all()
    area = (height * width).double() / (30 * 40)
    assert area.min() > 0.25 and area.max() < 0.65  # rounding to whole pixels moves the area a little
    assert area.max() - area.min() > 0.2 and len(set(zip(top.tolist(), left.tolist()))) > 100
    ratio = width.double() / height
    assert ratio.min() > 0.65 and ratio.max() < 1.5


def test_impossible_crops_fall_back_to_the_centre_like_torchvision():
    # A square crop of at least 90% of a 10 x 40 image never fits: take the centred 10 x 10.
    boxes = augment._crop_boxes(4, 10, 40, (0.9, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0, 15, 10, 10]] * 4


@pytest.mark.parametrize("index, reference", [
    (0, "adjust_brightness"), (1, "adjust_contrast"), (2, "adjust_saturation"), (3, "adjust_hue"),
])
def test_per_image_jitters_match_torchvision(index, reference):
    from torchvision.transforms import functional as TF

    batch = torch.rand(4, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    batch[0, :, :2] = 0.5  # grey pixels have no hue
    factors = torch.tensor([-0.3, 0.1, 0.4, 0.25]) if index == 3 else torch.tensor([0.6, 0.9, 1.2, 1.4])
    ours = augment._JITTERS[index](batch.clone(), factors)
    theirs = torch.stack([getattr(TF, reference)(image, float(f)) for image, f in zip(batch, factors)])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_brightness_factors_are_drawn_per_image_in_range():
    grey = np.full((64, 8, 8), 128, dtype=np.uint8)
    batch = _augment(grey, color_jitter=(0.4, 0.0, 0.0, 0.0), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    factors = (batch[:, 0] * STD[0] + MEAN[0]).mean(dim=(1, 2)) / (128 / 255)
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4
    assert factors.max() - factors.min() > 0.5


def test_from_eval_takes_model_fields_and_checks_options():
    eval_spec = TransformSpec(24, MEAN, STD, "bilinear")
    given = {"crop_scale": [0.08, 1], "crop_ratio": [0.75, 4 / 3], "flip": False, "color_jitter": [0.4, 0.4, 0.4, 0]}
    spec = AugmentSpec.from_eval(eval_spec, given)
    assert (spec.size, spec.mean, spec.std, spec.interpolation) == (24, MEAN, STD, "bilinear")
    assert spec.crop_scale == (0.08, 1.0) and spec.flip is False and spec.color_jitter == (0.4, 0.4, 0.4, 0.0)
    assert spec.fingerprint()["kind"] == "augment" and spec.fingerprint()["crop_scale"] == (0.08, 1.0)
    with pytest.raises(UserError, match="augmentation options crop_scale, crop_ratio, flip, color_jitter not set"):
        AugmentSpec.from_eval(eval_spec, {})
    with pytest.raises(UserError, match="unknown augmentation option 'crop_scal' .*did you mean: crop_scale"):
        AugmentSpec.from_eval(eval_spec, {**given, "crop_scal": [0.5, 1]})
    for key, value in (("crop_scale", [0.5, 1.5]), ("crop_ratio", [2, 1]), ("flip", "yes"),
                       ("color_jitter", [0.4, 0.4, 0.4]), ("color_jitter", [0.4, 0.4, 0.4, 0.7])):
        with pytest.raises(UserError, match=f"augmentation option '{key}'"):
            AugmentSpec.from_eval(eval_spec, {**given, key: value})


def test_pil_transform_is_reproducible_under_a_seed():
    spec = AugmentSpec(12, MEAN, STD, color_jitter=(0.4, 0.4, 0.4, 0.1))
    image = Image.fromarray(_images(1, 20, 16, channels=0)[0])  # grey: the output still has 3 channels
    torch.manual_seed(3)
    first = spec.pil_transform()(image)
    torch.manual_seed(3)
    assert first.shape == (3, 12, 12) and torch.equal(first, spec.pil_transform()(image))


def _epoch(loader):
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


def _loaded(split, epoch, seed=0, **options):
    sampler = build_sampler("class_aware", split.labels, seed=seed, samples_per_class=2)
    spec = AugmentSpec(12, MEAN, STD, color_jitter=(0.4, 0.4, 0.4, 0.1))
    return sampler, _epoch(augmented_loader(split, spec, 4, sampler, seed=seed, epoch=epoch, **options))


def test_augmented_loader_on_an_array_split_depends_only_on_seed_and_epoch():
    split = ArraySplit(name="train", images=_images(10), labels=np.repeat([0, 1, 2], [6, 3, 1]))
    sampler, (images, labels) = _loaded(split, epoch=1)
    assert images.shape == (10, 3, 12, 12)
    assert labels.tolist() == split.labels[list(sampler)].tolist()  # sampler order, epoch 1
    torch.manual_seed(123)  # what ran before does not matter
    again, _ = _loaded(split, epoch=1)[1]
    assert torch.equal(images, again)
    other_epoch, _ = _loaded(split, epoch=2)[1]
    assert not torch.allclose(images, other_epoch)


def _file_split(tmp_path, count=6):
    paths = [f"images/{i}.png" for i in range(count)]
    for path, pixels in zip(paths, _images(count, 10, 14)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / path)
    labels = np.arange(count) % 3
    return FileSplit(name="train", root=tmp_path, paths=paths, labels=labels,
                     list_file=tmp_path / "train.txt", list_sha256="test")


def test_augmented_loader_on_a_file_split_ignores_workers_and_history(tmp_path):
    split = _file_split(tmp_path)
    state = torch.get_rng_state()
    sampler, (images, labels) = _loaded(split, epoch=1)
    assert torch.equal(torch.get_rng_state(), state)  # loading leaves the global RNG alone
    assert images.shape == (6, 3, 12, 12) and labels.tolist() == split.labels[list(sampler)].tolist()
    torch.manual_seed(123)
    with_workers, _ = _loaded(split, epoch=1, num_workers=2)[1]
    assert torch.equal(images, with_workers)
    other_epoch, _ = _loaded(split, epoch=2)[1]
    assert not torch.allclose(images, other_epoch)


def test_augmented_loader_names_a_missing_image(tmp_path):
    split = _file_split(tmp_path)
    (tmp_path / split.paths[2]).unlink()
    with pytest.raises(UserError, match=r"images/2\.png"):
        _loaded(split, epoch=0)
