"""Batches of model-ready images from any split."""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ltbench.core.distributed import get_rank, get_world_size, shard_batches
from ltbench.core.errors import UserError, unknown_name
from ltbench.core.seeding import generator as seeded_generator
from ltbench.data.augment import AugmentSpec
from ltbench.data.base import ArraySplit, FileSplit, Split
from ltbench.data.jpeg_decode import decode_payloads, read_payload, transform_images
from ltbench.data.minimalist_crop import MDA_FUNCTIONS, MinimalistSchedule
from ltbench.data.transforms import TransformSpec

# augment.kind: torchvision's RandomResizedCrop (with the section's flip and jitter), or LIFT+'s
# minimalist crop (data/minimalist_crop.py), whose area range narrows from epoch to epoch.
AUGMENT_KINDS = ("random_resized_crop", "minimalist")


class _ImageFileDataset(Dataset):
    def __init__(self, split: FileSplit, transform):
        self.split = split
        self.transform = transform

    def __len__(self):
        return len(self.split)

    def _read(self, path):
        from PIL import Image

        with Image.open(path) as image:
            return self.transform(image)

    def __getitem__(self, index):
        path = self.split.image_path(index)
        try:
            tensor = self._read(path)
        except FileNotFoundError:
            raise UserError(f"image listed in {self.split.list_file} not found: {path}; "
                            "run `ltbench data check` to count missing images") from None
        except (OSError, SyntaxError, ValueError) as error:  # truncated, garbage, 0-byte (PIL's errors)
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"cannot decode image {path} (image {index + 1} of {self.split.list_file}): "
                            f"{problem}; replace or remove the file, or drop its line from the split file") from None
        return tensor, int(self.split.labels[index])


class _EncodedImageFileDataset(_ImageFileDataset):
    """Items: (a JPEG's bytes, or another format's Pillow-decoded pixels, label): see
    data/jpeg_decode.py; the batch is decoded and transformed on the device by _DecodedFileBatches."""

    def __init__(self, split: FileSplit):
        super().__init__(split, transform=None)

    def _read(self, path):
        return read_payload(path)

    def __getitem__(self, index):
        return (*super().__getitem__(index), index)


def _payload_batch(items):
    payloads, labels, rows = zip(*items)
    return list(payloads), torch.tensor(labels, dtype=torch.int64), list(rows)


class _DecodedFileBatches:
    """Batches of a file split whose JPEGs are decoded a batch at a time on ``device``
    (TransformSpec.gpu_jpeg); the workers only read files."""

    def __init__(self, split: FileSplit, transform: TransformSpec, loader: DataLoader, device):
        self.split, self.transform, self.loader, self.device = split, transform, loader, device
        # The files the device decoder rejected and Pillow decoded (CMYK / YCCK JPEGs), by name.
        self.decoded_by_pillow = []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for payloads, labels, rows in self.loader:
            names = [f"{self.split.image_path(row)} (image {row + 1} of {self.split.list_file})" for row in rows]
            images = decode_payloads(payloads, self.device, names, fallbacks=self.decoded_by_pillow)
            yield transform_images(images, self.transform), labels


class _Loader(DataLoader):
    """A DataLoader whose workers' UserErrors come back as the one line they were, not as the
    worker's traceback (torch re-raises them with it)."""

    def __iter__(self):
        return _one_line_errors(super().__iter__())


def _one_line_errors(iterator):
    try:
        yield from iterator
    except UserError as error:
        text = str(error)
        marker = "UserError: "
        if text.startswith("Caught UserError in DataLoader worker") and marker in text:
            raise UserError(text.rsplit(marker, 1)[1].strip()) from None
        raise


class _SeededImageDataset(_ImageFileDataset):
    """Items are (index, seed, epoch): each image is augmented from its own seed, whichever worker
    loads it, by the augmentation of its epoch (a MinimalistSchedule changes from epoch to epoch;
    each worker builds an epoch's transform once)."""

    def __init__(self, split: FileSplit, augment):
        super().__init__(split, None if _scheduled(augment) else augment.pil_transform())
        self.augment, self.epoch = augment, None

    def __getitem__(self, item):
        index, seed, epoch = item
        if _scheduled(self.augment) and epoch != self.epoch:
            self.transform, self.epoch = self.augment.spec_for(epoch).pil_transform(), epoch
        # fork_rng keeps the seeding local: the caller's (or worker's) global RNG is left as it was.
        # Only the CPU generator, which the PIL augmentation draws from: torch.manual_seed would
        # also queue a seed for every lazily initialised accelerator type (CUDA, XPU, MTIA), each
        # with a formatted stack trace (issue 23: 9 ms an image here, an hour of a loader's time
        # for an iNaturalist epoch), and leave them reseeded, outside what fork_rng restores.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return super().__getitem__(index)


class _SeededSampler(Sampler):
    """(index, seed, epoch) for every index of ``sampler``; a seed depends only on (seed, epoch,
    position)."""

    def __init__(self, sampler, seed: int, epoch: int):
        self.sampler, self.seed, self.epoch = sampler, seed, epoch

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        seeds = _seeds(len(order), self.seed, self.epoch).tolist()
        return zip(order.tolist(), seeds, [self.epoch] * len(order))


def _scheduled(augment) -> bool:
    """Whether the augmentation changes from epoch to epoch (spec_for(epoch) gives each one's)."""
    return hasattr(augment, "spec_for")


def _for_epoch(augment, epoch: int):
    return augment.spec_for(epoch) if _scheduled(augment) else augment


class _ArrayBatches:
    """Batches of an in-memory split, transformed a whole batch at a time (on ``device`` if given)."""

    def __init__(self, split: ArraySplit, transform: TransformSpec, batch_size, sampler, drop_last, device=None):
        self.split, self.transform = split, transform
        self.batch_size, self.sampler, self.drop_last = batch_size, sampler, drop_last
        self.device = device

    def __len__(self):
        total = len(self.sampler) if self.sampler is not None else len(self.split)
        return total // self.batch_size if self.drop_last else -(-total // self.batch_size)

    def __iter__(self):
        order = np.fromiter(iter(self.sampler), dtype=np.int64) if self.sampler is not None \
            else np.arange(len(self.split))
        for number, start in enumerate(range(0, len(order), self.batch_size)):
            index = order[start: start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            images = self._transform(self.split.images[index], number)
            yield images, torch.from_numpy(self.split.labels[index])

    def _transform(self, images, number):
        return self.transform.apply_batch(images, self.device)


class _AugmentedArrayBatches(_ArrayBatches):
    """Batches of an in-memory split, each augmented from a seed of (seed, epoch, batch number),
    on ``device`` if given (the uint8 pixels move; the draws are made on the host)."""

    def __init__(self, split: ArraySplit, spec, batch_size, sampler, drop_last, seed, epoch,
                 device=None):
        super().__init__(split, spec, batch_size, sampler, drop_last, device)
        self.seed, self.epoch = seed, epoch

    def _transform(self, images, number):
        # Under torchrun this process's images are the positions rank, rank + world, ... of the
        # global step batch (shard_batches): every process draws the global batch's
        # augmentation from the one generator of (seed, epoch, step) and takes its positions,
        # so the processes augment as a single process does.
        generator = torch.Generator().manual_seed(int(_seeds(1, self.seed, self.epoch, number)[0]))
        processes, rank = get_world_size(), get_rank()
        if processes == 1:
            return self.transform.apply_batch(images, generator, device=self.device)
        positions = np.arange(len(images)) * processes + rank
        return self.transform.apply_batch(images, generator, positions=positions, total=len(images) * processes,
                                          device=self.device)


def _seeds(count: int, *entropy) -> np.ndarray:
    """``count`` 63-bit seeds mixed from ``entropy``: nearby inputs give unrelated seeds."""
    return np.random.SeedSequence(entropy).generate_state(count, np.uint64) >> np.uint64(1)


def image_loader(split: Split, transform: TransformSpec, batch_size: int, sampler=None,
                 num_workers: int = 0, pin_memory: bool = False, drop_last: bool = False, device=None):
    """Iterable of (images [B, 3, S, S] float, labels [B]) in sampler order (split order if None).

    ``device``: where an in-memory split's batches are transformed (and its images come back);
    file splits are decoded and transformed on the CPU by ``num_workers`` loader processes, or,
    when ``transform.gpu_jpeg`` and a device is given, read by the workers and decoded a batch at
    a time on ``device`` (data/jpeg_decode.py; training loaders, which pass no device, keep Pillow).
    """
    if isinstance(split, ArraySplit):
        return _ArrayBatches(split, transform, batch_size, sampler, drop_last, device)
    if isinstance(split, FileSplit) and getattr(transform, "gpu_jpeg", False) and device is not None:
        files = _Loader(_EncodedImageFileDataset(split), batch_size=batch_size, sampler=sampler, shuffle=False,
                        num_workers=num_workers, drop_last=drop_last, collate_fn=_payload_batch,
                        generator=seeded_generator(0, "image_loader"))
        return _DecodedFileBatches(split, transform, files, device)
    if isinstance(split, FileSplit):
        return _Loader(_ImageFileDataset(split, transform.pil_transform()), batch_size=batch_size,
                          sampler=sampler, shuffle=False, num_workers=num_workers,
                          pin_memory=pin_memory, drop_last=drop_last,
                          # Its own generator draws the base seed: iterating never advances the
                          # global RNG (a cold cache's extraction would shift later draws).
                          generator=seeded_generator(0, "image_loader"))
    raise TypeError(f"no loader for split type {type(split).__name__}")


def augmented_loader(split: Split, spec, batch_size: int, sampler, seed: int, epoch: int,
                     num_workers: int = 0, pin_memory: bool = False, drop_last: bool = False, device=None):
    """Iterable of augmented (images [B, 3, S, S] float, labels [B]) for ``epoch``, in sampler order;
    ``spec``: an AugmentSpec or one epoch's MinimalistCropSpec (anything with apply_batch and
    pil_transform).

    Every image's augmentation depends only on (seed, epoch, its position in the epoch): not on
    num_workers, on the number of processes or on what ran before, so a run resumed at an epoch
    draws what the uninterrupted run drew. (In-memory splits draw a whole batch from one
    generator, so there the batch size matters too; each process takes the draws of its
    positions of the global batch.) Sets the
    sampler's epoch.
    batch_size is the batch of one optimizer step: in a distributed run this process loads its
    share of it (core/distributed.py). device: where an in-memory split's batches are augmented
    (file splits are augmented by Pillow in the loader workers). One epoch only: a training run
    takes ``epoch_batches``, which keeps one loader (and its workers) for all epochs.
    """
    sampler.set_epoch(epoch)
    if isinstance(split, ArraySplit):
        sampler, batch_size = shard_batches(sampler, batch_size)
        return _AugmentedArrayBatches(split, spec, batch_size, sampler, drop_last, seed, epoch, device)
    if isinstance(split, FileSplit):
        return _FileEpochs(split, spec, batch_size, sampler, seed, num_workers, pin_memory, drop_last,
                           persistent=False)(epoch)
    raise TypeError(f"no loader for split type {type(split).__name__}")


class _FileEpochs:
    """epoch -> the batches of a file split for that epoch, from one DataLoader kept for every
    epoch: its workers (persistent_workers) start once, not once an epoch.

    With ``augment`` (an AugmentSpec, a MinimalistCropSpec or a MinimalistSchedule) items are
    (index, seed, epoch) and every image is augmented, by its epoch's augmentation, from its own
    seed of (seed, epoch, position) (_SeededSampler, whose epoch is set here): the draws
    depend neither on the workers nor on which epoch the loader was built in. Otherwise the eval
    transform, in sampler order. The sampler's epoch is set before each epoch's iteration, which
    the DataLoader starts anew (a persistent loader resets its workers' queues, so an epoch cut
    short, as phase A's drop_last does, leaves nothing behind for the next).
    """

    def __init__(self, split: FileSplit, augment, batch_size: int, sampler, seed: int, num_workers: int,
                 pin_memory: bool, drop_last: bool = False, eval_transform=None, persistent: bool = True):
        self.sampler = sampler
        if augment is not None:
            # Seeds follow positions in the global order: sharded after they are drawn.
            self.seeded = _SeededSampler(sampler, seed, epoch=0)
            order, dataset = self.seeded, _SeededImageDataset(split, augment)
        else:
            self.seeded, order, dataset = None, sampler, _ImageFileDataset(split, eval_transform.pil_transform())
        order, batch_size = shard_batches(order, batch_size)
        # A private generator draws the workers' base seed, so iterating leaves the global RNG alone.
        self.loader = _Loader(dataset, batch_size=batch_size, sampler=order, shuffle=False, num_workers=num_workers,
                              pin_memory=pin_memory, drop_last=drop_last,
                              persistent_workers=persistent and num_workers > 0,
                              generator=seeded_generator(seed, "augmented_loader" if augment is not None
                                                         else "image_loader"))

    def __call__(self, epoch: int):
        self.sampler.set_epoch(epoch)
        if self.seeded is not None:
            self.seeded.epoch = epoch
        return self.loader


def training_augmentation(eval_transform: TransformSpec, augment: dict, epochs: int = None):
    """The augmentation a config section (enabled, kind, crop_scale, ...) asks for, at the eval
    transform's size, normalisation and interpolation: None (not enabled), an AugmentSpec (kind
    random_resized_crop, the default) or a MinimalistSchedule over ``epochs`` (kind minimalist:
    schedule, crop_scale; square crops only, so crop_ratio must be [1, 1], flip false and
    color_jitter all 0, which the section then says). Every bad value is a one-line error."""
    options = dict(augment or {})
    if not options.pop("enabled", False):
        return None
    kind = options.pop("kind", "random_resized_crop")
    schedule = options.pop("schedule", "convex")  # kind minimalist only
    spec = AugmentSpec.from_eval(eval_transform, options)
    if kind == "random_resized_crop":
        return spec
    if kind != "minimalist":
        raise unknown_name("augment.kind", kind, AUGMENT_KINDS)
    if schedule not in MDA_FUNCTIONS:
        raise unknown_name("augment.schedule", schedule, MDA_FUNCTIONS)
    if spec.crop_ratio != (1.0, 1.0) or spec.flip or any(spec.color_jitter):
        raise UserError("augment.kind=minimalist draws square crops without flips or colour jitter (LIFT+'s "
                        "MinimalistRandomResizedCrop): set augment.crop_ratio=[1.0, 1.0], augment.flip=false and "
                        "augment.color_jitter=[0, 0, 0, 0]")
    if epochs is None:
        raise ValueError("augment.kind minimalist follows the epochs: pass epochs")
    return MinimalistSchedule(spec.size, spec.mean, spec.std, spec.interpolation, spec.crop_scale, schedule,
                              int(epochs))


def epoch_batches(split: Split, eval_transform: TransformSpec, augment: dict, batch_size: int, sampler,
                  seed: int, num_workers: int = 0, pin_memory: bool = False, device=None, epochs: int = None):
    """epoch -> (images, labels) batches of a training split in sampler order: augmented per image
    when ``augment`` (a config section: enabled, kind, crop_scale, ...; training_augmentation)
    is enabled, else through the eval transform. In a distributed run, this process's share of
    each batch. ``epochs``: the training's epochs, which augment.kind minimalist's schedule
    spans (the other kinds do not need it).

    In-memory splits (CIFAR-LT, digits) are transformed a batch at a time on ``device`` (the
    run's GPU: the uint8 pixels move, the host only draws the random numbers); file splits are
    decoded by ``num_workers`` loader processes, started once for all epochs."""
    spec = training_augmentation(eval_transform, augment, epochs)
    if isinstance(split, FileSplit):
        return _FileEpochs(split, spec, batch_size, sampler, seed, num_workers, pin_memory,
                           eval_transform=eval_transform)

    def batches(epoch: int):
        if spec is not None:
            return augmented_loader(split, _for_epoch(spec, epoch), batch_size, sampler, seed=seed, epoch=epoch,
                                    device=device)
        sampler.set_epoch(epoch)
        shard, local_batch_size = shard_batches(sampler, batch_size)
        return image_loader(split, eval_transform, local_batch_size, sampler=shard, device=device)

    return batches
