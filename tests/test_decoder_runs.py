"""Imbalance-VLM decoder methods end to end on digits_lt, and their second-stage heads."""
import json
from pathlib import Path

import pytest
import torch

from ltbench.models.calibration import DisAlignHead, LearnableWeightScaling, build_second_stage
from ltbench.methods.decoder import iteration_schedule

SHORT = ("stage1.iterations=30", "stage2.iterations=10")
NAMES = ["decoder", "decoder_ce", "decoder_bs", "decoder_focal", "decoder_disalign", "decoder_crt", "decoder_lws"]


def _run(run_cli, out, method, *options):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                   "--no-progress", "--cfg-options", *options)
    assert code == 0, stderr
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text()), stderr


@pytest.mark.parametrize("method", NAMES)
def test_every_decoder_method_runs_end_to_end(run_cli, tmp_path, method):
    record, _ = _run(run_cli, tmp_path, method, *SHORT)
    assert record["method"] == method and 0 <= record["metrics"]["overall"] <= 100
    two_stage = method in ("decoder_disalign", "decoder_crt", "decoder_lws")
    assert ("after_stage1" in record["extra_metrics"]) == two_stage
    assert ("stage2" in record["timings"]) == two_stage
    assert Path(record["artifacts"]["stage1_checkpoint"]).is_file()


def test_ldam_with_drw_runs_through_the_generic_decoder(run_cli, tmp_path):
    record, _ = _run(run_cli, tmp_path, "decoder", *SHORT, "loss={type: ldam, max_margin: 0.5, drw_start: 0.5}")
    assert record["config"]["loss"]["type"] == "ldam"


def test_second_stages_share_one_stage_1_and_a_checkpoint_hands_it_over(run_cli, tmp_path):
    first, _ = _run(run_cli, tmp_path / "a", "decoder_crt", *SHORT)
    second, stderr = _run(run_cli, tmp_path / "a", "decoder_disalign", *SHORT)
    assert "reusing the finished stage 1" in stderr
    assert second["extra_metrics"]["after_stage1"] == first["extra_metrics"]["after_stage1"]
    checkpoint = first["artifacts"]["stage1_checkpoint"]
    third, _ = _run(run_cli, tmp_path / "b", "decoder_disalign", *SHORT, f"stage1.checkpoint={checkpoint}")
    assert not list((tmp_path / "b" / "work").glob("decoder_stage1__*"))
    assert third["metrics"]["per_class_accuracy"] == second["metrics"]["per_class_accuracy"]


def test_a_stage_1_checkpoint_of_another_decoder_shape_is_a_one_line_error(run_cli, tmp_path):
    first, _ = _run(run_cli, tmp_path, "decoder_ce", *SHORT)
    code, _, stderr = run_cli("run", "--method", "decoder_disalign", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress", "--cfg-options", *SHORT, "decoder.depth=1",
                              f"stage1.checkpoint={first['artifacts']['stage1_checkpoint']}")
    assert code == 2 and "does not fit this decoder" in stderr and len(stderr.strip().splitlines()) == 1


def _head():
    torch.manual_seed(0)
    return torch.nn.Linear(8, 5)


def test_disalign_at_initialisation_leaves_logits_unchanged():
    head = _head()
    features = torch.randn(6, 8)
    aligned = DisAlignHead(head)
    assert torch.allclose(aligned(features), head(features))
    trainable = {name for name, p in aligned.named_parameters() if p.requires_grad}
    assert trainable == {"confidence.weight", "confidence.bias", "alpha", "beta"}


def test_disalign_formula_after_changing_alpha_and_beta():
    head = _head()
    aligned = DisAlignHead(head)
    with torch.no_grad():
        aligned.alpha.fill_(2.0)
        aligned.beta.fill_(0.5)
    features = torch.randn(3, 8)
    z = head(features)
    s = torch.sigmoid(aligned.confidence(features))
    assert torch.allclose(aligned(features), s * (2.0 * z + 0.5) + (1 - s) * z, atol=1e-6)


def test_lws_starts_at_the_stage_1_logits_and_crt_starts_afresh():
    head = _head()
    features = torch.randn(4, 8)
    assert torch.allclose(LearnableWeightScaling(head)(features), head(features))
    retrained = build_second_stage("crt", head)
    assert not torch.allclose(retrained.weight, head.weight)
    assert all(p.requires_grad for p in retrained.parameters())
    assert not any(p.requires_grad for p in LearnableWeightScaling(head).head.parameters())


def test_iteration_schedule_covers_the_iterations_in_whole_epochs():
    steps, epochs, warmup = iteration_schedule({"batch_size": 256, "iterations": 8192, "warmup_iterations": 512}, 115846)
    assert steps == 452 and epochs == 19 and steps * epochs >= 8192 and warmup == pytest.approx(512 / 452)
    assert iteration_schedule({"batch_size": 64, "iterations": 3}, 380)[:2] == (3, 1)
