"""A run's numbers depend on its config and seed only: not on the cache state (cold or warm),
on the number of loader workers, on progress output or on --save-logits (issue 13, item 1).

Each case runs a method twice into two results folders sharing one cache: first on a cold cache
with no workers, no progress and no saved logits, then on the warm cache with every one of those
switched; the two records' metrics must be byte-identical. linear_probe also runs each switch
alone, on digits_lt (in memory) and on a folder_lt of files.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ltbench.core import registry
from ltbench.core.seeding import derive_seed, generator, seeded

# Short settings for the slow methods; the rest run with their digits_lt defaults.
SHORT = {
    "ballad": ["phase_a.epochs=2", "phase_b.epochs=2"],
    "tackle": ["teacher.ballad_options=[phase_a.epochs=2]", "train.epochs=2"],
    "clip_ensemble": ["members=[zeroshot,linear_probe]"],
    "clip_finetune": ["train.epochs=2"],
    "clip_finetune_bs": ["train.epochs=2"],
    "linear_probe": ["train.epochs=3"],
    "posthoc_la": ["source_options=[train.epochs=3]", "tau=null"],
    "posthoc_prior": ["source_options=[train.epochs=3]"],
    "posthoc_taunorm": ["source_options=[train.epochs=3]"],
    "lift": ["train.epochs=2"],
}
DECODER_SHORT = ["stage1.iterations=20", "stage1.epochs=null", "stage2.iterations=10", "stage2.epochs=null"]


def _options(method):
    return SHORT.get(method, DECODER_SHORT if method.startswith("decoder") else [])


def _run(run_cli, out, cache, method, dataset_args, options, *, workers, progress, save_logits):
    flags = ([] if progress else ["--no-progress"]) + (["--save-logits"] if save_logits else [])
    code, stdout, stderr = run_cli("run", "--method", method, "--backbone", "tiny", "--out", out, *flags,
                                   *dataset_args, *options, f"runtime.cache_dir={cache}",
                                   f"runtime.num_workers={workers}")
    assert code == 0, stderr
    record = json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())
    return json.dumps({"metrics": record["metrics"], "extra_metrics": record["extra_metrics"]}, sort_keys=True)


def _cold_then_warm(run_cli, tmp_path, method, dataset_args, warm_workers):
    cache = tmp_path / "cache"
    options = _options(method)
    cold = _run(run_cli, tmp_path / "cold", cache, method, dataset_args, options,
                workers=0, progress=False, save_logits=False)
    warm = _run(run_cli, tmp_path / "warm", cache, method, dataset_args, options,
                workers=warm_workers, progress=True, save_logits=True)
    assert warm == cold, f"cold cache: {cold}\nwarm cache: {warm}"


@pytest.mark.slow  # every method twice or more: outside the inner loop
@pytest.mark.parametrize("method", registry.names(registry.METHODS))
def test_digits_numbers_do_not_depend_on_cache_progress_or_saved_logits(run_cli, tmp_path, method):
    _cold_then_warm(run_cli, tmp_path, method, ["--dataset", "digits_lt", "--cfg-options"], warm_workers=0)


def _folder_dataset(root: Path):
    """folder_lt with 3 classes of small PNG / JPEG images written with Pillow."""
    rng = np.random.default_rng(0)
    (root / "names.txt").write_text("cat\ndog\nbird\n")
    for split, per_class in (("train", (6, 3, 2)), ("val", (2, 2, 2)), ("test", (8, 8, 8))):
        lines = []
        for label, count in enumerate(per_class):
            for index in range(count):
                relative = f"img/{split}_{label}_{index}." + ("png" if index % 2 else "jpg")
                path = root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                base = rng.integers(0, 256, (1, 1, 3)) * (label + 1) % 256
                pixels = np.clip(base + rng.integers(-40, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(path)
                lines.append(f"{relative} {label}\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return ["--dataset", "folder_lt", "--data-root", root, "--cfg-options", "dataset.train_list=train.txt",
            "dataset.val_list=val.txt", "dataset.test_list=test.txt", "dataset.classnames=names.txt"]


@pytest.mark.slow  # runs with image workers: outside the inner loop
@pytest.mark.parametrize("method", ["linear_probe", "decoder_crt", "ballad"])
def test_file_dataset_numbers_do_not_depend_on_cache_workers_or_progress(run_cli, tmp_path, method):
    root = tmp_path / "data"
    root.mkdir()
    # The decoder's own preprocessing is sized for 224 px backbones (the tiny one takes 32 px);
    # its token cache is what a cold and a warm run differ in.
    extra = ["head.standardize=true"] if method == "linear_probe" else []
    extra += ["phase_a.batch_size=4", "phase_b.batch_size=4"] if method == "ballad" else []
    extra += ["preprocess.type=clip", "stage1.tokens_cache=true",
             "stage1.augment.enabled=false"] if method.startswith("decoder") else []
    _cold_then_warm(run_cli, tmp_path, method, _folder_dataset(root) + extra, warm_workers=2)


# One switch at a time, for one fast method on both kinds of dataset: a difference names the
# switch that caused it (the combined cases above only say that one of them did).
SWITCHES = {
    "warm cache": {"warm": True},
    "2 loader workers": {"workers": 2},
    "progress on": {"progress": True},
    "--save-logits": {"save_logits": True},
}


@pytest.mark.slow  # a run per switch: outside the inner loop
@pytest.mark.parametrize("kind", ["digits_lt", "folder_lt"])
def test_each_switch_alone_leaves_linear_probe_numbers_unchanged(run_cli, tmp_path, kind):
    if kind == "digits_lt":
        dataset_args = ["--dataset", "digits_lt", "--cfg-options"]
    else:
        (tmp_path / "data").mkdir()
        dataset_args = _folder_dataset(tmp_path / "data")
    options = _options("linear_probe")
    plain = {"workers": 0, "progress": False, "save_logits": False}
    baseline_cache = tmp_path / "cache-baseline"
    baseline = _run(run_cli, tmp_path / "baseline", baseline_cache, "linear_probe", dataset_args, options, **plain)
    differing = {}
    for index, (switch, change) in enumerate(SWITCHES.items()):
        change = dict(change)
        # Every other switch runs on a cold cache of its own, so only the one switch differs.
        cache = baseline_cache if change.pop("warm", False) else tmp_path / f"cache-{index}"
        numbers = _run(run_cli, tmp_path / f"run-{index}", cache, "linear_probe", dataset_args, options,
                       **{**plain, **change})
        if numbers != baseline:
            differing[switch] = numbers
    assert not differing, f"baseline: {baseline}\nchanged by: {differing}"


def test_derived_seeds_depend_on_seed_and_purpose_only():
    assert derive_seed(0, "a", 1) == derive_seed(0, "a", 1)
    assert len({derive_seed(0, "a"), derive_seed(1, "a"), derive_seed(0, "b"), derive_seed(0, "a", 0)}) == 4
    assert 0 <= derive_seed(2 ** 40, "x") < 2 ** 63
    assert torch_equal(torch_rand(generator(3, "p")), torch_rand(generator(3, "p")))


def test_seeded_blocks_leave_the_global_rng_alone():
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(0, "init"):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    torch.rand(100)  # whatever ran before does not change the block's draws
    with seeded(0, "init"):
        assert torch.equal(torch.rand(3), inside)


def torch_rand(gen):
    import torch

    return torch.rand(4, generator=gen)


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)
