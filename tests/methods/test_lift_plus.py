"""LIFT+ (issue 26), the lift family's variant: its settings resolve to the code's recipe, it runs
end to end from `ltbench run` and beats zero-shot on digits_lt, resumes an interrupted training
to the uninterrupted numbers (the minimalist crop's schedule included), takes a timm ViT with the
classifier from the class means, and refuses bad settings before any work."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunRequest, resolve
from ltbench.core.errors import UserError
from ltbench.methods.lift.method import class_mean_images, class_means, head_init


def _record(stdout):
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())


# --- the recipe ------------------------------------------------------------------------------------

def test_lift_plus_resolves_to_the_codes_recipe():
    cfg = resolve(RunRequest(method="lift_plus", dataset="imagenet_lt"))
    train = cfg["train"]
    assert (train["epochs"], train["lr"], train["weight_decay"], train["momentum"], train["batch_size"]) == \
        (5, 0.02, 5.0e-4, 0.9, 128)
    assert train["schedule"] == "cosine_epoch" and train["optimizer"] == "sgd"
    assert train["augment"] == {"enabled": True, "kind": "minimalist", "schedule": "convex", "crop_scale": [0.08, 1.0],
                                "crop_ratio": [1.0, 1.0], "flip": False, "color_jitter": [0.0, 0.0, 0.0, 0.0]}
    assert cfg["loss"] == {"type": "balanced_softmax", "tau": 1.0}
    assert (cfg["peft"]["type"], cfg["peft"]["down_init"], cfg["head"]["scale"]) == ("adaptformer", "kaiming_uniform",
                                                                                     25.0)
    assert (cfg["preprocess"]["interpolation"], cfg["tte"]["expand"], cfg["text"]["templates"]) == \
        ("bicubic", 24, "single")
    assert resolve(RunRequest(method="lift_plus", dataset="inat2018"))["train"]["epochs"] == 15
    large = resolve(RunRequest(method="lift_plus", dataset="imagenet_lt", backbone="ViT-L-14:openai"))
    assert large["tte"]["expand"] == 24  # LIFT's ViT-L/14 config has 21, LIFT+'s none
    assert resolve(RunRequest(method="lift", dataset="imagenet_lt", backbone="ViT-L-14:openai"))["tte"]["expand"] == 21
    # LIFT keeps its own recipe
    lift = resolve(RunRequest(method="lift", dataset="imagenet_lt"))
    assert lift["train"]["epochs"] == 10 and lift["train"]["augment"]["kind"] == "random_resized_crop"


# --- the class-mean classifier ------------------------------------------------------------------------

def test_class_mean_images_takes_at_most_n_a_class_at_random():
    labels = np.repeat(np.arange(4), [7, 3, 1, 5])
    every = class_mean_images(labels, 4, None, torch.Generator().manual_seed(0))
    assert np.array_equal(every, np.arange(len(labels)))
    picked = class_mean_images(labels, 4, 2, torch.Generator().manual_seed(0))
    assert np.bincount(labels[picked], minlength=4).tolist() == [2, 2, 1, 2]
    assert np.array_equal(picked, np.sort(picked))
    again = class_mean_images(labels, 4, 2, torch.Generator().manual_seed(0))
    other = [class_mean_images(labels, 4, 2, torch.Generator().manual_seed(seed)) for seed in range(1, 6)]
    assert np.array_equal(picked, again) and any(not np.array_equal(picked, o) for o in other)
    with pytest.raises(UserError, match="class 2 has no training image"):
        class_mean_images(np.array([0, 1, 3]), 4, None, torch.Generator())


def test_class_means_are_the_normalised_mean_features():
    features = torch.randn(9, 5, generator=torch.Generator().manual_seed(0))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    expected = torch.stack([F.normalize(features[labels == c].mean(0), dim=0) for c in range(3)])
    assert torch.allclose(class_means(features, labels, 3), expected, atol=1e-6)


def test_head_init_auto_follows_the_text_tower():
    assert head_init({"init": "auto"}, True, "tiny") == "text"
    assert head_init({"init": "auto"}, False, "timm:x") == "class_mean"
    assert head_init({"init": "class_mean"}, True, "tiny") == "class_mean"
    with pytest.raises(UserError, match="no text tower"):
        head_init({"init": "text"}, False, "timm:vit_base_patch16_224.augreg_in21k")


# --- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("lift_plus")


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
def test_lift_plus_beats_zero_shot_on_digits(run_cli, out):
    code, stdout, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", out,
                                   "--no-progress")
    assert code == 0, stderr
    zero_shot = _record(stdout)["metrics"]["overall"]
    code, stdout, stderr = run_cli("run", "--method", "lift_plus", "--dataset", "digits_lt", "--out", out,
                                   "--no-progress")
    assert code == 0, stderr
    record = _record(stdout)
    # Random-init tiny CLIP: zero-shot is at chance (10 classes); LIFT+'s digits settings reach ~40-48.
    assert record["metrics"]["overall"] > zero_shot + 15
    details = record["details"]["lift"]
    assert (details["augment"], details["head_init"], details["peft"]) == ("minimalist (convex)", "text", "adaptformer")
    assert record["config"]["method"] == "lift_plus"


def test_aft_runs_in_lift_and_records_its_ratio(run_cli, out):
    code, stdout, stderr = run_cli("run", "--method", "lift", "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   "--cfg-options", "peft.type=aft", "peft.aft_ratio=0.05", "train.epochs=1")
    assert code == 0, stderr
    details = _record(stdout)["details"]["lift"]
    width, mlp = 64, 256
    per_block = sum(int(n * 0.05) for n in (3 * width * width, 3 * width, width * width, width, mlp * width, mlp,
                                            width * mlp, width))
    assert details["peft"] == "aft" and details["aft_ratio"] == 0.05
    assert details["trained_parameters"]["peft"] == 2 * per_block


@pytest.mark.slow
def test_a_timm_vit_takes_the_class_mean_classifier(run_cli, out):
    """timm's test_vit at random init (`timm:NAME:none`, never a download) as the tuned tower."""
    code, stdout, stderr = run_cli("run", "--method", "lift_plus", "--dataset", "digits_lt", "--backbone",
                                   "timm:test_vit:none", "--out", out, "--no-progress", "--cfg-options",
                                   "train.epochs=2", "tte.enabled=true")
    assert code == 0, stderr
    record = _record(stdout)
    assert record["details"]["lift"]["head_init"] == "class_mean" and record["details"]["lift"]["tte"] == "five"
    assert record["details"]["lift"]["trained_parameters"]["head"] == 10 * 64
    code, _, stderr = run_cli("run", "--method", "lift_plus", "--dataset", "digits_lt", "--backbone",
                              "timm:test_vit:none", "--out", out, "--no-progress", "--cfg-options", "head.init=text")
    assert code != 0 and "no text tower" in stderr


def test_file_images_of_any_shape_take_the_minimalist_crops(run_cli, tmp_path, folder_dataset):
    """Non-square image files (20 x 24 px) through the PIL path: square crops of the 20 px side
    scheduled over 3 epochs, then LIFT+'s eval resize and TTE."""
    (tmp_path / "data").mkdir()
    options = folder_dataset(tmp_path / "data")
    code, stdout, stderr = run_cli(
        "run", "--method", "lift_plus", "--dataset", "folder_lt", "--backbone", "tiny", "--data-root", options["root"],
        "--out", tmp_path / "out", "--no-progress", "--cfg-options", "dataset.train_list=train.txt",
        "dataset.test_list=test.txt", "dataset.classnames=names.txt", "train.epochs=3", "train.batch_size=4",
        "tte.enabled=true", "tte.expand=4", "runtime.num_workers=0")
    assert code == 0, stderr
    record = _record(stdout)
    assert record["details"]["lift"]["augment"] == "minimalist (convex)" and record["details"]["lift"]["tte"] == "five"


def test_an_interrupted_lift_plus_resumes_to_the_uninterrupted_numbers(run_cli, tmp_path, interrupt_after_saves):
    args = ("run", "--method", "lift_plus", "--dataset", "digits_lt", "--no-progress", "--cfg-options",
            "train.epochs=3")
    code, stdout, stderr = run_cli(*args[:1], "--out", tmp_path / "whole", *args[1:])
    assert code == 0, stderr
    whole = _record(stdout)["metrics"]

    let_it_run = interrupt_after_saves(1)  # Ctrl-C after epoch 1's checkpoint: epochs 2 and 3 crop tighter
    code, _, stderr = run_cli(*args[:1], "--out", tmp_path / "split", *args[1:])
    assert code == 130 and "--resume" in stderr
    let_it_run()
    code, stdout, stderr = run_cli(*args[:1], "--resume", "--out", tmp_path / "split", *args[1:])
    assert code == 0, stderr
    assert "after epoch 1" in stderr
    assert _record(stdout)["metrics"] == whole


@pytest.mark.parametrize("option, message", [
    ("train.augment.kind=autoaugment", "train.augment.kind"),
    ("train.augment.schedule=steps", "train.augment.schedule"),
    ("train.epochs=1", "train.epochs=1"),
    ("train.augment.flip=true", "augment.flip=false"),
    ("peft.aft_loc=ffn", "peft.aft_loc"),
    ("head.class_mean_images=0", "head.class_mean_images"),
])
def test_bad_lift_plus_options_fail_with_one_line(run_cli, out, option, message):
    code, _, stderr = run_cli("run", "--method", "lift_plus", "--dataset", "digits_lt", "--out", out, "--no-progress",
                              "--cfg-options", option)
    assert code != 0
    error = [line for line in stderr.splitlines() if "error" in line]
    assert len(error) == 1 and message in error[0], stderr


# --- the suite -------------------------------------------------------------------------------------

# scripts/run_ft_methods.sh of LIFT+'s code, one row per line: (method, flags) on imagenet_lt and
# places_lt, every one with `tte True`; the lr of lp / fft / aft as the script gives them.
FT_METHODS_SCRIPT = {
    "imagenet_lt": [("lp", {"lr": 0.03}), ("fft", {"lr": 0.001}), ("aft", {"aft_ratio": 0.005, "lr": 0.02}),
                    ("bitfit", {}), ("pt", {}), ("adapter", {}), ("lora", {}), ("adaptformer", {})],
    "places_lt": [("lp", {"lr": 0.03}), ("fft", {"lr": 0.002}), ("aft", {"aft_ratio": 0.005, "lr": 0.02}),
                  ("bitfit", {}), ("pt", {}), ("adapter", {}), ("lora", {}), ("adaptformer", {})],
}
PEFT_OF_ROW = {"lp": ("full", 0), "fft": ("full", None), "aft": ("aft", None), "bitfit": ("bitfit", None),
               "pt": ("vpt_deep", None), "adapter": ("adapter", None), "lora": ("lora", None),
               "adaptformer": ("adaptformer", None)}


def test_the_suite_runs_the_codes_fine_tuning_comparison():
    import math

    from ltbench.app.suite import find_suite, load_suite

    suite = load_suite(find_suite("lift_plus"))
    rows = [(entry, resolve(entry.request())) for entry in suite.entries
            if entry.method == "lift_plus" and entry.backbone == "ViT-B-16:openai"
            and any(key.startswith("peft.") for key, _ in entry.cfg_options)]
    classes, blocks = {"imagenet_lt": 1000, "places_lt": 365}, 12
    for dataset, script in FT_METHODS_SCRIPT.items():
        ours = [cfg for entry, cfg in rows if entry.dataset == dataset]
        assert len(ours) == len(script) - 1  # adaptformer is LIFT+ itself: the TTE part's entries
        for (row, flags), cfg in zip(script, ours):
            assert (cfg["peft"]["type"], cfg["peft"]["blocks"]) == PEFT_OF_ROW[row], row
            assert cfg["tte"]["enabled"] is True and cfg["train"]["epochs"] == 5
            assert cfg["train"]["lr"] == flags.get("lr", 0.02), row
            assert cfg["peft"]["aft_ratio"] == flags.get("aft_ratio"), row
            count = classes[dataset]
            if row == "pt":  # pt_len None: 2 ** max(0, int(log2(C / L)))
                assert cfg["peft"]["vpt_length"] == 2 ** max(0, int(math.log2(count / blocks)))
            if row == "lora":  # lora_dim None: 2 ** max(0, int(log2(C / (4 L))))
                assert cfg["peft"]["bottleneck"] == 2 ** max(0, int(math.log2(count / (blocks * 4))))
    # every entry of the suite resolves (the dry run's check), both TTE settings of each main run
    mains = [(e.method, e.dataset, e.backbone, dict(e.cfg_options).get("tte.enabled", False)) for e in suite.entries
             if not any(key.startswith(("peft.", "text.")) for key, _ in e.cfg_options)]
    for method in ("lift", "lift_plus"):
        for dataset in ("imagenet_lt", "places_lt", "inat2018", "cifar100_lt"):
            for backbone in ("ViT-B-16:openai", "ViT-L-14:openai"):
                assert {tte for m, d, b, tte in mains if (m, d, b) == (method, dataset, backbone)} == {False, True}
