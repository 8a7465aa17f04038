"""LIFT+'s minimalist data augmentation (issue 26): the per-epoch minimum scale is the code's
formula for every mda_func and epoch, the per-image crops are the code's get_params draws (the
same torch calls from the same seed, so the same boxes and pixels), the batch crops follow the
same distribution, and epoch_batches runs the schedule from epoch to epoch on in-memory and
file splits. The code is transcribed below from shijxcs/LIFT-plus utils/transforms.py."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms
from torchvision.transforms.functional import InterpolationMode, get_dimensions, resized_crop

from ltbench.core.errors import UserError
from ltbench.data.base import ArraySplit, FileSplit
from ltbench.data.loading import epoch_batches, training_augmentation
from ltbench.data.minimalist_crop import (
    MDA_FUNCTIONS,
    MinimalistCropSpec,
    MinimalistSchedule,
    minimalist_min_scale,
    square_crop_boxes,
)
from ltbench.data.samplers import build_sampler
from ltbench.data.transforms import TransformSpec

# --- the code (LIFT-plus utils/transforms.py, MinimalistRandomResizedCrop), transcribed ---------

class CodeMinimalistRandomResizedCrop(transforms.RandomResizedCrop):
    def __init__(self, size, num_epochs, scale=(0.08, 1.0), sched_func="convex",
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        super().__init__(size, scale, interpolation=interpolation, antialias=antialias)
        self.num_epochs = num_epochs
        self.sched_func = sched_func
        self.iter = 0

    def step(self):
        self.iter += 1

    def get_min_scale(self):
        t = self.iter / (self.num_epochs - 1)
        assert 0 <= t <= 1
        if self.sched_func == "min":
            s = 0
        elif self.sched_func == "max":
            s = 1
        elif self.sched_func == "linear":
            s = t
        elif self.sched_func == "convex":
            s = 1 - math.sqrt(1 - t ** 2)
        elif self.sched_func == "concave":
            s = math.sqrt(1 - (1 - t) ** 2)
        else:
            raise ValueError
        assert 0 <= s <= 1
        return s * (self.scale[1] - self.scale[0]) + self.scale[0]

    @staticmethod
    def get_params(img, scale):
        _, height, width = get_dimensions(img)
        area = height * width
        min_scale = min(scale[0], min(height, width) ** 2 / area)
        max_scale = min(scale[1], min(height, width) ** 2 / area)
        target_area = area * torch.empty(1).uniform_(min_scale, max_scale).item()
        h = int(round(math.sqrt(target_area)))
        w = int(round(math.sqrt(target_area)))
        i = torch.randint(0, height - h + 1, size=(1,)).item()
        j = torch.randint(0, width - w + 1, size=(1,)).item()
        return i, j, h, w

    def forward(self, img):
        min_scale = self.get_min_scale()
        max_scale = self.scale[1]
        i, j, h, w = self.get_params(img, [min_scale, max_scale])
        return resized_crop(img, i, j, h, w, self.size, self.interpolation, antialias=self.antialias)


def _code_crop_after(epochs: int, epoch: int, func: str, size: int = 16, scale=(0.08, 1.0)):
    crop = CodeMinimalistRandomResizedCrop(size, epochs, scale=scale, sched_func=func,
                                           interpolation=InterpolationMode.BICUBIC)
    for _ in range(epoch):  # the code's trainer calls step() after each epoch
        crop.step()
    return crop


MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _schedule(epochs, func="convex", size=16, scale=(0.08, 1.0)):
    return MinimalistSchedule(size, MEAN, STD, "bicubic", tuple(scale), func, epochs)


# --- the schedule ------------------------------------------------------------------------------

@pytest.mark.parametrize("func", MDA_FUNCTIONS)
@pytest.mark.parametrize("epochs", [2, 5, 15])
@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.3, 0.9)])
def test_min_scale_is_the_codes_formula_at_every_epoch(func, epochs, scale):
    for epoch in range(epochs):
        expected = _code_crop_after(epochs, epoch, func, scale=scale).get_min_scale()
        assert minimalist_min_scale(epoch, epochs, func, scale) == expected  # the same float, bit for bit
        assert _schedule(epochs, func, scale=scale).spec_for(epoch).min_scale == expected


def test_the_convex_default_starts_free_and_ends_at_the_whole_square():
    scales = [minimalist_min_scale(epoch, 5) for epoch in range(5)]
    assert scales[0] == pytest.approx(0.08) and scales[-1] == pytest.approx(1.0)
    assert scales == sorted(scales)
    # convex: below the linear schedule in between (slow at first)
    assert all(s < minimalist_min_scale(e, 5, "linear") for e, s in enumerate(scales) if 0 < e < 4)


def test_one_epoch_or_an_unknown_function_is_a_one_line_error():
    with pytest.raises(UserError, match="train.epochs=1"):
        minimalist_min_scale(0, 1)
    with pytest.raises(UserError, match="augment.schedule"):
        _schedule(5, func="cosine")


# --- per-image crops: the code's draws ---------------------------------------------------------

def _pil(height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("func", ["convex", "min", "linear"])
@pytest.mark.parametrize("height, width", [(32, 32), (20, 31), (40, 18)])
def test_per_image_crops_are_the_codes_boxes_and_pixels(func, height, width):
    """Seeded alike, ltbench's PIL path and the code's transform draw the same box (same torch
    calls in the same order) and give the same tensor, at every epoch of the schedule."""
    image, epochs = _pil(height, width), 5
    code_normalise = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for epoch in range(epochs):
        code = _code_crop_after(epochs, epoch, func)
        ours = _schedule(epochs, func).spec_for(epoch).pil_transform()
        for seed in range(8):
            torch.manual_seed(seed)
            box = code.get_params(image, [code.get_min_scale(), code.scale[1]])
            torch.manual_seed(seed)
            expected = code_normalise(code(image))
            torch.manual_seed(seed)
            got = ours(image)
            assert torch.equal(got, expected), (epoch, seed, box)


# --- batch crops: the code's distribution --------------------------------------------------------

def _room(boxes, column, extent):
    """Each box's offset along one axis, relative to the room it had."""
    return boxes[:, column] / np.maximum(1, extent - boxes[:, 2])


@pytest.mark.parametrize("height, width, low", [(32, 32, 0.08), (24, 36, 0.3)])
def test_batch_boxes_follow_the_codes_distribution(height, width, low):
    """The batch path draws its fractions first, then the offsets: other draws than the code's,
    from the same distribution. 20,000 boxes each, compared by chi-square on the side and by
    Kolmogorov-Smirnov on the relative offsets (fixed seeds: the test is deterministic)."""
    count, high = 20000, 1.0
    image = _pil(height, width)
    torch.manual_seed(0)
    code = np.array([CodeMinimalistRandomResizedCrop.get_params(image, [low, high]) for _ in range(count)])
    ours = square_crop_boxes(count, height, width, low, high, torch.Generator().manual_seed(1)).numpy()
    assert (ours[:, 2] == ours[:, 3]).all() and (ours[:, :2] >= 0).all()
    assert (ours[:, 0] + ours[:, 2] <= height).all() and (ours[:, 1] + ours[:, 3] <= width).all()
    sides = np.union1d(code[:, 2], ours[:, 2])
    table = np.array([[np.sum(code[:, 2] == s) for s in sides], [np.sum(ours[:, 2] == s) for s in sides]])
    assert stats.chi2_contingency(table).pvalue > 1e-3
    for column, extent in ((0, height), (1, width)):
        assert stats.ks_2samp(_room(code, column, extent), _room(ours, column, extent)).pvalue > 1e-3
    # Not a vacuous test: the code's boxes at another minimum scale are told apart.
    torch.manual_seed(0)
    other = np.array([CodeMinimalistRandomResizedCrop.get_params(image, [low + 0.2, high]) for _ in range(count)])
    table = np.array([[np.sum(other[:, 2] == s) for s in sides], [np.sum(ours[:, 2] == s) for s in sides]])
    assert stats.chi2_contingency(table).pvalue < 1e-6


def test_batch_crops_resize_their_boxes_as_the_pil_path():
    """A batch image and the same box through PIL: within one grey level (the resampler's test
    covers that bound); the whole last epoch of a square image is the whole image."""
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    spec = _schedule(5).spec_for(4)  # convex at the last epoch: min_scale 1, the whole image
    got = spec.apply_batch(images, torch.Generator().manual_seed(0))
    whole = TransformSpec(16, MEAN, STD, "bicubic").apply_batch(images)
    assert torch.equal(got, whole)
    first = MinimalistCropSpec(16, MEAN, STD, "bicubic", 0.08, 1.0)
    generator = torch.Generator().manual_seed(2)
    boxes = square_crop_boxes(4, 32, 32, 0.08, 1.0, torch.Generator().manual_seed(2))
    batch = first.apply_batch(images, generator)
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for image, (top, left, side, _), out in zip(images, boxes.tolist(), batch):
        crop = resized_crop(Image.fromarray(image), top, left, side, side, [16, 16], InterpolationMode.BICUBIC)
        assert (out - to_tensor(crop)).mul(torch.tensor(STD).view(3, 1, 1)).abs().max() <= 1.01 / 255


# --- epoch_batches runs the schedule -------------------------------------------------------------

EVAL = TransformSpec(size=12, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), interpolation="bicubic")
MINIMALIST = {"enabled": True, "kind": "minimalist", "schedule": "convex", "crop_scale": [0.08, 1.0],
              "crop_ratio": [1.0, 1.0], "flip": False, "color_jitter": [0.0, 0.0, 0.0, 0.0]}
LABELS = np.arange(10) % 3


def _images(count=10, height=14, width=18):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def _cat(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_in_memory_epochs_take_their_epochs_crop():
    split = ArraySplit(name="train", images=_images(), labels=LABELS)
    sampler = build_sampler("instance", LABELS, seed=2)
    batches = epoch_batches(split, EVAL, MINIMALIST, 4, sampler, seed=5, epochs=3)
    schedule = training_augmentation(EVAL, MINIMALIST, epochs=3)
    for epoch in range(3):
        images, _ = _cat(batches(epoch))
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        expected = []
        for number, start in enumerate(range(0, len(order), 4)):
            from ltbench.data.loading import _seeds

            generator = torch.Generator().manual_seed(int(_seeds(1, 5, epoch, number)[0]))
            expected.append(schedule.spec_for(epoch).apply_batch(split.images[order[start: start + 4]], generator))
        assert torch.equal(images, torch.cat(expected))
    # The last epoch crops the whole shorter side (14 of 14 x 18): the crops differ only in where they sit.
    last, _ = _cat(batches(2))
    first, _ = _cat(batches(0))
    assert not torch.equal(last, first)


def test_file_epochs_take_their_epochs_crop_in_persistent_workers(tmp_path):
    paths = [f"images/{i}.png" for i in range(len(LABELS))]
    for path, pixels in zip(paths, _images()):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / path)
    split = FileSplit(name="train", root=tmp_path, paths=paths, labels=LABELS, list_file=tmp_path / "train.txt",
                      list_sha256="test")
    sampler = build_sampler("instance", LABELS, seed=2)
    with_workers = epoch_batches(split, EVAL, MINIMALIST, 4, sampler, seed=5, num_workers=2, epochs=3)
    without = epoch_batches(split, EVAL, MINIMALIST, 4, build_sampler("instance", LABELS, seed=2), seed=5,
                            num_workers=0, epochs=3)
    schedule = training_augmentation(EVAL, MINIMALIST, epochs=3)
    for epoch in (0, 2, 1):
        images, labels = _cat(with_workers(epoch))
        assert torch.equal(images, _cat(without(epoch))[0])
        # each image is the epoch's crop from its own seed of (seed, epoch, position)
        from ltbench.data.loading import _seeds

        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        transform = schedule.spec_for(epoch).pil_transform()
        for position, (index, seed) in enumerate(zip(order, _seeds(len(order), 5, epoch))):
            torch.manual_seed(int(seed))
            with Image.open(tmp_path / paths[index]) as image:
                assert torch.equal(images[position], transform(image))


@pytest.mark.parametrize("change, message", [
    ({"flip": True}, "augment.flip=false"),
    ({"crop_ratio": [0.75, 1.33]}, "crop_ratio"),
    ({"color_jitter": [0.4, 0.0, 0.0, 0.0]}, "color_jitter"),
    ({"schedule": "steps"}, "augment.schedule"),
    ({"kind": "autoaugment"}, "augment.kind"),
])
def test_bad_minimalist_settings_are_one_line_errors(change, message):
    with pytest.raises(UserError, match=message):
        training_augmentation(EVAL, {**MINIMALIST, **change}, epochs=5)


def test_without_a_kind_the_augmentation_is_random_resized_crop():
    plain = {key: value for key, value in MINIMALIST.items() if key not in ("kind", "schedule")}
    spec = training_augmentation(EVAL, plain)
    assert type(spec).__name__ == "AugmentSpec" and spec.crop_ratio == (1.0, 1.0)
