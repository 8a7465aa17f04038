"""Training loaders (issue 22, finding 12): workers from the cores per process, one loader with
persistent workers for every epoch of a file split, and in-memory splits transformed on the
run's device. The batches stay those of the old per-epoch loaders: numbers depend on config and
seed only (tests/engine/test_determinism.py runs whole methods with 0 and 2 workers)."""
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from ltbench.core import cpus
from ltbench.data.augment import AugmentSpec
from ltbench.data.base import ArraySplit, FileSplit
from ltbench.data.loading import augmented_loader, epoch_batches, image_loader
from ltbench.data.samplers import build_sampler
from ltbench.data.transforms import TransformSpec

EVAL = TransformSpec(size=12, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
AUGMENT = {"enabled": True, "crop_scale": [0.5, 1.0], "crop_ratio": [0.75, 1.33], "flip": True,
           "color_jitter": [0.4, 0.4, 0.4, 0.1]}
LABELS = np.arange(10) % 3


def _images(count=10, height=14, width=18):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def _file_split(tmp_path):
    paths = [f"images/{i}.png" for i in range(len(LABELS))]
    for path, pixels in zip(paths, _images()):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / path)
    return FileSplit(name="train", root=tmp_path, paths=paths, labels=LABELS, list_file=tmp_path / "train.txt",
                     list_sha256="test")


def _epoch(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


# --- workers from the cores per process ---------------------------------------------------------

@pytest.mark.parametrize("cores, local_processes, workers", [(16, 1, 15), (96, 8, 11), (64, 1, 16), (2, 1, 1),
                                                             (1, 1, 0), (8, 8, 0)])
def test_auto_workers_are_the_cores_per_process_less_one(monkeypatch, cores, local_processes, workers):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_processes))
    assert cpus.loader_workers("auto") == workers
    assert cpus.loader_workers(3) == 3


def test_auto_is_the_default_and_a_run_accepts_it(run_cli, tmp_path):
    import yaml

    from ltbench.config import benchmarks_dir

    assert yaml.safe_load((benchmarks_dir() / "defaults.yaml").read_text())["runtime"]["num_workers"] == "auto"
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress", "--out",
                           tmp_path / "out", "--cfg-options", "runtime.num_workers=auto")
    assert code == 0, err
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress", "--out",
                           tmp_path / "out", "--cfg-options", "runtime.num_workers=some")
    assert code != 0 and "runtime.num_workers='some'" in err and "or 'auto'" in err


# --- one loader, persistent workers --------------------------------------------------------------

@pytest.mark.parametrize("augment", [AUGMENT, {"enabled": False}])
def test_a_file_split_keeps_one_loader_and_its_workers_for_every_epoch(tmp_path, augment):
    split = _file_split(tmp_path)
    sampler = build_sampler("class_aware", LABELS, seed=2, samples_per_class=3)
    batches = epoch_batches(split, EVAL, augment, 4, sampler, seed=5, num_workers=2)
    first, workers = None, None
    for epoch in range(3):
        loader = batches(epoch)
        first = first or loader
        if epoch == 1:  # an epoch cut short (phase A's drop_last) leaves nothing for the next one
            got = list(itertools.islice(iter(loader), 1))
            assert len(got) == 1
            continue
        images, labels = _epoch(loader)
        assert loader is first and loader.persistent_workers
        pids = sorted(worker.pid for worker in loader._iterator._workers)
        assert workers in (None, pids)  # the same worker processes as in epoch 0
        workers = pids
        # What the old per-epoch loaders gave (no workers, a loader built for this epoch).
        fresh_sampler = build_sampler("class_aware", LABELS, seed=2, samples_per_class=3)
        if augment["enabled"]:
            spec = AugmentSpec.from_eval(EVAL, {k: v for k, v in augment.items() if k != "enabled"})
            expected = _epoch(augmented_loader(split, spec, 4, fresh_sampler, seed=5, epoch=epoch))
        else:
            fresh_sampler.set_epoch(epoch)
            expected = _epoch(image_loader(split, EVAL, 4, sampler=fresh_sampler))
        assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])


# --- in-memory splits on the device ---------------------------------------------------------------

@pytest.mark.parametrize("augment", [AUGMENT, {"enabled": False}])
def test_in_memory_batches_are_made_on_the_run_device(augment):
    """'meta' stands in for a GPU: a CPU tensor mixed into the device's work, or a value read back
    to the host (a sync), fails there. The draws come from the CPU generators of (seed, epoch,
    batch) and leave the global RNG alone."""
    split = ArraySplit(name="train", images=_images(), labels=LABELS)
    sampler = build_sampler("class_aware", LABELS, seed=2, samples_per_class=3)
    state = torch.get_rng_state()
    on_meta = list(epoch_batches(split, EVAL, augment, 4, sampler, seed=5, device="meta")(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert {images.device.type for images, _ in on_meta} == {"meta"}
    sizes = [min(4, len(sampler) - start) for start in range(0, len(sampler), 4)]
    assert [tuple(images.shape) for images, _ in on_meta] == [(size, 3, 12, 12) for size in sizes]
    on_cpu = _epoch(epoch_batches(split, EVAL, augment, 4, sampler, seed=5, device="cpu")(1))
    host = _epoch(epoch_batches(split, EVAL, augment, 4, sampler, seed=5)(1))
    assert torch.equal(on_cpu[0], host[0]) and torch.equal(on_cpu[1], host[1])
    assert torch.equal(torch.cat([labels for _, labels in on_meta]), host[1])
