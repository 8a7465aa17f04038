"""LIFT end to end through `ltbench run` on digits_lt with the random-init tiny CLIP: it beats
zero-shot, records its trained-parameter counts and TTE, and refuses bad options before work."""
import json
from pathlib import Path

import pytest


def _record(stdout):
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("lift")


def test_lift_beats_zero_shot_and_records_its_parameters(run_cli, out):
    code, stdout, stderr = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", out,
                                   "--no-progress")
    assert code == 0, stderr
    zero_shot = _record(stdout)["metrics"]["overall"]
    code, stdout, stderr = run_cli("run", "--method", "lift", "--dataset", "digits_lt", "--out", out, "--no-progress")
    assert code == 0, stderr
    record = _record(stdout)
    # Random-init tiny CLIP: zero-shot is at chance (10 classes); LIFT's digits defaults reach ~45.
    assert record["metrics"]["overall"] > zero_shot + 15
    lift = record["details"]["lift"]
    width, layers, bottleneck = 64, 2, 16  # tiny ViT; digits_lt sets peft.bottleneck=16
    adaptformer = layers * (2 * width + width * bottleneck + bottleneck + bottleneck * width + width + 1)
    assert lift["trained_parameters"] == {"peft": adaptformer, "head": 10 * width, "total": adaptformer + 10 * width}
    assert (lift["peft"], lift["bottleneck"], lift["tuned_blocks"], lift["tte"]) == ("adaptformer", 16, 2, "off")


def test_tte_reuses_the_trained_stage_and_is_recorded(run_cli, out):
    options = ("--cfg-options", "peft.type=lora", "train.epochs=1")
    code, stdout, stderr = run_cli("run", "--method", "lift", "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   *options)
    assert code == 0, stderr
    plain = _record(stdout)
    code, stdout, stderr = run_cli("run", "--method", "lift", "--dataset", "digits_lt", "--out", out, "--no-progress",
                                   *options, "tte.enabled=true", "tte.crops=ten")
    assert code == 0, stderr
    assert "reusing the finished LIFT training" in stderr
    record = _record(stdout)
    assert record["artifacts"]["lift_checkpoint"] == plain["artifacts"]["lift_checkpoint"]
    assert record["config"]["tte"]["enabled"] is True and record["config_hash"] != plain["config_hash"]
    assert (record["details"]["lift"]["peft"], record["details"]["lift"]["tte"]) == ("lora", "ten")
    assert record["details"]["lift"]["trained_parameters"]["peft"] == 2 * 2 * (2 * 64 * 16)  # q and v, 2 blocks
    assert record["metrics"]["overall"] != plain["metrics"]["overall"]


@pytest.mark.parametrize("option, message", [
    ("peft.type=prefix", "peft.type"),
    ("peft.type=partial", "peft.blocks"),
    ("tte.crops=three", "tte.crops"),
    ("head.init=zeros", "head.init"),
])
def test_bad_options_fail_with_one_line(run_cli, out, option, message):
    code, _, stderr = run_cli("run", "--method", "lift", "--dataset", "digits_lt", "--out", out, "--no-progress",
                              "--cfg-options", option)
    assert code != 0
    error = [line for line in stderr.splitlines() if "error" in line]
    assert len(error) == 1 and message in error[0], stderr


def test_file_images_of_any_shape_train_and_test_with_tte(run_cli, tmp_path, folder_dataset):
    """Non-square image files (20 x 24 px) through the PIL path: train crops, the 8/7 eval resize
    and TTE's crops of the resized centre square all reach the 32 px tiny ViT."""
    (tmp_path / "data").mkdir()
    options = folder_dataset(tmp_path / "data")
    code, stdout, stderr = run_cli(
        "run", "--method", "lift", "--dataset", "folder_lt", "--backbone", "tiny", "--data-root", options["root"],
        "--out", tmp_path / "out", "--no-progress", "--cfg-options", "dataset.train_list=train.txt",
        "dataset.test_list=test.txt", "dataset.classnames=names.txt", "train.epochs=1", "train.batch_size=4",
        "tte.enabled=true", "tte.expand=4", "runtime.num_workers=0")
    assert code == 0, stderr
    record = _record(stdout)
    assert record["details"]["lift"]["tte"] == "five" and len(record["metrics"]["per_class_accuracy"]) == 2


def test_an_interrupted_training_resumes_to_the_uninterrupted_numbers(run_cli, tmp_path, interrupt_after_saves):
    args = ("run", "--method", "lift", "--dataset", "digits_lt", "--no-progress", "--cfg-options", "train.epochs=2")
    code, stdout, stderr = run_cli(*args[:1], "--out", tmp_path / "whole", *args[1:])
    assert code == 0, stderr
    whole = _record(stdout)["metrics"]

    let_it_run = interrupt_after_saves(1)  # Ctrl-C after epoch 1's checkpoint
    code, _, stderr = run_cli(*args[:1], "--out", tmp_path / "split", *args[1:])
    assert code == 130 and "--resume" in stderr
    let_it_run()
    assert list((tmp_path / "split" / "work").rglob("lift_last.pt"))  # epoch 1's checkpoint
    code, stdout, stderr = run_cli(*args[:1], "--resume", "--out", tmp_path / "split", *args[1:])
    assert code == 0, stderr
    assert "resumed lift from" in stderr and "after epoch 1" in stderr
    assert _record(stdout)["metrics"] == whole
    assert not list((tmp_path / "split" / "work").rglob("lift_last.pt"))  # the stage replaced it
