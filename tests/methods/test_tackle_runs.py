"""TACKLE and clip_ensemble end to end on digits_lt (tiny CLIP teacher, timm's test_resnet)."""
import json
from pathlib import Path

import numpy as np
import pytest

from ltbench.metrics import shot_groups

# A shorter teacher phase A and vision schedule than the config's keep the tests quick.
SHORT = ("teacher.ballad_options=[phase_a.epochs=10]", "train.epochs=6")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """One results folder for the module: the teacher's phase A is trained once and reused."""
    return tmp_path_factory.mktemp("tackle-runs")


def run(run_cli, out, method, *options, flags=()):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                   "--no-progress", *flags, "--cfg-options", *options)
    assert code == 0, stderr
    path = Path(stdout.strip().splitlines()[-1].removeprefix("record: "))
    return path, json.loads(path.read_text()), stderr


@pytest.mark.slow  # teacher + student: outside the inner loop
def test_pseudo_labelled_pool_images_join_only_few_shot_classes(run_cli, out):
    _, record, stderr = run(run_cli, out, "tackle", *SHORT)
    counts = np.asarray(record["class_counts"])
    pseudo = record["details"]["pseudo_labels"]
    added = np.asarray(pseudo["added_per_class"])
    assert pseudo["added"] == added.sum() > 0
    assert (added[shot_groups(counts) != "few"] == 0).all()
    assert ((counts + added)[added > 0] <= 100).all()  # cap_at_many
    precision = pseudo["precision"]
    assert precision["many"] is None and precision["medium"] is None
    assert 0 <= precision["few"] == precision["overall"] <= 100
    assert record["details"]["train_images"] == {"labeled": int(counts.sum()), "total": int(counts.sum() + added.sum())}
    assert record["backbone"] == "test_resnet" and "pseudo_label" in record["timings"]
    assert Path(record["artifacts"]["phase_a_checkpoint"]).is_file()
    assert "pseudo-labels:" in stderr and record["metrics"]["overall"] > 20


def test_without_the_pool_the_vision_model_trains_on_the_labeled_split_only(run_cli, out):
    _, record, stderr = run(run_cli, out, "tackle", *SHORT, "pool.enabled=false")
    assert "pseudo_labels" not in record["details"] and "pseudo-labels:" not in stderr
    assert record["details"]["train_images"]["total"] == sum(record["class_counts"])
    assert "phase_a_checkpoint" not in record["artifacts"]  # no teacher needed


@pytest.mark.slow  # teacher + student: outside the inner loop
def test_ensemble_with_clip_records_both_members_and_saves_logits(run_cli, out):
    path, record, _ = run(run_cli, out, "tackle", *SHORT, "ensemble.with_clip=true", flags=("--save-logits",))
    assert record["backbone"] == "test_resnet+tiny"
    assert {"vision_only", "clip", "val"} <= set(record["extra_metrics"])
    ensemble = record["details"]["ensemble"]
    assert ensemble["members"] == ["vision", "clip"] and ensemble["weights_from"] == "val"
    assert abs(sum(ensemble["weights"]) - 1) < 1e-9
    saved = np.load(path.parent / record["logits_path"])
    assert saved["logits_test"].shape == (300, 10) and saved["logits_val"].shape == (100, 10)
    accuracy = 100.0 * (saved["logits_test"].argmax(1) == saved["labels_test"]).mean()
    assert accuracy == pytest.approx(record["metrics"]["overall"])


@pytest.mark.slow  # teacher + student: outside the inner loop
def test_clip_ensemble_of_a_saved_run_reproduces_it_at_weight_one(run_cli, out):
    saved_path, saved, _ = run(run_cli, out, "tackle", *SHORT, flags=("--save-logits",))
    _, record, _ = run(run_cli, out, "clip_ensemble", f"members=[{saved_path},zeroshot]", "ensemble.weights=[1,0]")
    assert record["metrics"]["per_class_accuracy"] == saved["metrics"]["per_class_accuracy"]
    assert record["backbone"] == "test_resnet+tiny"
    assert record["details"]["ensemble"]["weights"] == [1.0, 0.0]
    assert record["details"]["ensemble"]["weights_from"] == "fixed"
    _, chosen, _ = run(run_cli, out, "clip_ensemble", f"members=[{saved_path},zeroshot]", "ensemble.combine=logit_adjusted",
                       "ensemble.adjust=[0,1]")
    assert chosen["details"]["ensemble"]["weights_from"] == "val"
    assert chosen["details"]["ensemble"]["adjust"] == [0.0, 1.0]


def test_ensemble_members_that_cannot_be_used_are_one_line_errors(run_cli, out, tmp_path):
    no_logits, _, _ = run(run_cli, out, "zeroshot_clip", "text.templates=single")
    cases = [
        (f"members=[{tmp_path / 'missing.json'},zeroshot]", "run record not found"),
        (f"members=[{no_logits},zeroshot]", "saved no logits; rerun it with --save-logits"),
        ("members=[zeroshot]", "members=['zeroshot']: expected a list of texts (at least 2) or null"),
        ("members=[zeroshot,clip_ensemble]", "cannot be clip_ensemble itself"),
        ("members=[zeroshot,no_such_method]", "no_such_method"),
    ]
    for option, message in cases:
        code, _, stderr = run_cli("run", "--method", "clip_ensemble", "--dataset", "digits_lt", "--out", out,
                                  "--no-progress", "--cfg-options", option)
        assert code != 0 and message in stderr and "Traceback" not in stderr, (option, stderr)
        assert len(stderr.strip().splitlines()) == 1


def test_saved_logits_of_another_dataset_option_are_refused(run_cli, out):
    saved_path, _, _ = run(run_cli, out, "zeroshot_clip", "text.templates=single", flags=("--save-logits",))
    code, _, stderr = run_cli("run", "--method", "clip_ensemble", "--dataset", "digits_lt", "--out", out,
                              "--no-progress", "--cfg-options", f"members=[{saved_path},zeroshot]",
                              "dataset.imbalance_ratio=10")
    assert code != 0 and "other training class counts" in stderr


@pytest.mark.parametrize("option, message", [
    ("select.classes=tail", "select.classes"),
    ("ensemble.combine=vote", "ensemble.combine"),
    ("teacher.source=oracle", "teacher.source"),
    ("pool.root=/no/such/folder", "pool.root is not a folder"),
])
def test_bad_tackle_options_fail_before_any_training(run_cli, tmp_path, option, message):
    code, _, stderr = run_cli("run", "--method", "tackle", "--dataset", "digits_lt", "--out", tmp_path, "--no-progress",
                              "--cfg-options", "ensemble.with_clip=true", option)
    assert code != 0 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "work").exists()  # nothing was trained
