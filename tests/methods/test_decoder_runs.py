"""Imbalance-VLM decoder methods end to end on digits_lt, and their second-stage heads."""
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ltbench.config import RunRequest, resolve
from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.engine.trainer import build_optimizer, train_settings
from ltbench.methods.decoder.settings import iteration_schedule
from ltbench.models.calibration import (
    DisAlignHead,
    LearnableWeightScaling,
    MarcHead,
    build_second_stage,
    select_tau,
    tau_normalised,
)

SHORT = ("stage1.iterations=30", "stage2.iterations=10")
SECOND_STAGES = ["decoder_disalign", "decoder_crt", "decoder_lws", "decoder_marc", "decoder_taunorm"]
NAMES = ["decoder", "decoder_ce", "decoder_bs", "decoder_focal", *SECOND_STAGES]


def _run(run_cli, out, method, *options):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                   "--no-progress", "--cfg-options", *options)
    assert code == 0, stderr
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text()), stderr


@pytest.mark.slow  # test_every_method runs each in the inner loop: outside the inner loop
@pytest.mark.parametrize("method", NAMES)
def test_every_decoder_method_runs_end_to_end(run_cli, tmp_path, method):
    record, _ = _run(run_cli, tmp_path, method, *SHORT)
    two_stage = method in SECOND_STAGES
    # The decoder learnt (seeded): chance on digits_lt's 10 balanced test classes is 10.
    decoder = record["extra_metrics"]["after_stage1"] if two_stage else record["metrics"]
    assert record["method"] == method and decoder["overall"] > 15
    assert ("after_stage1" in record["extra_metrics"]) == two_stage
    assert ("stage2" in record["timings"]) == two_stage
    assert Path(record["artifacts"]["stage1_checkpoint"]).is_file()
    # A linear final head is saved (hash in details) for posthoc_taunorm; DisAlign / LWS / MARC are not linear.
    linear = method not in ("decoder_disalign", "decoder_lws", "decoder_marc")
    assert ("linear_head" in record["artifacts"]) == linear == ("linear_head" in record["details"])
    assert registry.get(registry.METHODS, method).saves_linear_head(record["config"]) == linear


def test_ldam_with_drw_runs_through_the_generic_decoder(run_cli, tmp_path, monkeypatch):
    """The generic decoder trains with the configured LDAM: every step passes the training class
    counts and its progress, so DRW re-weights from halfway on."""
    import functools

    from ltbench.core.registry import LOSSES

    calls = []
    ldam = registry.get(LOSSES, "ldam")

    @functools.wraps(ldam)
    def noting_ldam(logits, targets, class_counts, progress=None, **options):
        calls.append((list(map(int, class_counts)), progress, options))
        return ldam(logits, targets, class_counts, progress=progress, **options)

    monkeypatch.setitem(LOSSES.module_dict, "ldam", noting_ldam)
    record, _ = _run(run_cli, tmp_path, "decoder", *SHORT, "loss={type: ldam, max_margin: 0.5, drw_start: 0.5}")
    assert len(calls) == 30  # one per stage-1 iteration
    assert all(counts == record["class_counts"] for counts, _, _ in calls)
    assert all(options == {"max_margin": 0.5, "drw_start": 0.5} for _, _, options in calls)
    progress = [value for _, value, _ in calls]
    assert progress == sorted(progress) and progress[0] < 0.5 <= progress[-1]  # DRW off, then on


@pytest.mark.slow  # three runs: outside the inner loop
def test_second_stages_share_one_stage_1_and_a_checkpoint_hands_it_over(run_cli, tmp_path):
    first, _ = _run(run_cli, tmp_path / "a", "decoder_crt", *SHORT)
    second, stderr = _run(run_cli, tmp_path / "a", "decoder_disalign", *SHORT)
    assert "reusing the finished stage 1" in stderr
    assert second["extra_metrics"]["after_stage1"] == first["extra_metrics"]["after_stage1"]
    checkpoint = first["artifacts"]["stage1_checkpoint"]
    third, _ = _run(run_cli, tmp_path / "b", "decoder_disalign", *SHORT, f"stage1.checkpoint={checkpoint}")
    assert not list((tmp_path / "b" / "work").glob("decoder_stage1__*"))
    assert third["metrics"]["per_class_accuracy"] == second["metrics"]["per_class_accuracy"]


@pytest.mark.slow  # two runs: outside the inner loop
def test_a_stage_1_checkpoint_of_another_decoder_shape_is_a_one_line_error(run_cli, tmp_path):
    first, _ = _run(run_cli, tmp_path, "decoder_ce", *SHORT)
    code, _, stderr = run_cli("run", "--method", "decoder_disalign", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress", "--cfg-options", *SHORT, "decoder.depth=1",
                              f"stage1.checkpoint={first['artifacts']['stage1_checkpoint']}")
    assert code == 2 and "does not fit this decoder" in stderr and len(stderr.strip().splitlines()) == 1


def test_taunorm_records_its_grid_the_split_and_the_chosen_tau(run_cli, tmp_path):
    record, stderr = _run(run_cli, tmp_path, "decoder_taunorm", *SHORT, "stage2.tau_grid=[0.0, 0.5, 1.0]")
    chosen = record["details"]["taunorm"]
    assert chosen["tau_grid"] == [0.0, 0.5, 1.0] and chosen["selected_on"] == "val"
    assert chosen["tau"] == chosen["tau_grid"][chosen["val_top1"].index(max(chosen["val_top1"]))]
    assert "tau-normalisation: tau" in stderr and "warning" not in stderr


def test_best_val_selection_keeps_the_best_epoch_and_records_it(run_cli, tmp_path, monkeypatch):
    from ltbench.engine import hooks

    # Per stage (its BestOnVal hook), in the order the stages ran: each epoch's val top-1. The hooks are
    # kept alive here: keyed by id(), stage 1's freed hook could share its address with stage 2's.
    stage_hooks, val_top1 = [], []
    after_epoch = hooks.BestOnVal.after_epoch

    def noting_val(self, epoch):
        note = after_epoch(self, epoch)
        if not any(hook is self for hook in stage_hooks):
            stage_hooks.append(self)
            val_top1.append([])
        index = next(i for i, hook in enumerate(stage_hooks) if hook is self)
        val_top1[index].append(float(note.split()[2]))  # "val top-1 X (best ...)"
        return note

    monkeypatch.setattr(hooks.BestOnVal, "after_epoch", noting_val)
    record, _ = _run(run_cli, tmp_path, "decoder_lws", *SHORT, "stage1.select=best_val", "stage2.select=best_val")
    assert len(val_top1) == 2
    for stage, epochs in zip(("stage1_select", "stage2_select"), val_top1):
        chosen = record["details"][stage]
        assert chosen["selected_on"] == "val" and chosen["best_epoch"] == epochs.index(max(epochs)) + 1
        assert chosen["val_top1"] == pytest.approx(max(epochs), abs=0.005)
    # The record's val numbers are those of the kept (best) stage-2 weights.
    assert record["extra_metrics"]["val"]["overall"] == pytest.approx(max(val_top1[1]), abs=0.005)


def test_code_preprocessing_needs_the_backbones_input_size(run_cli, tmp_path):
    code, _, stderr = run_cli("run", "--method", "decoder_ce", "--dataset", "digits_lt", "--out", tmp_path,
                              "--no-progress", "--cfg-options", *SHORT, "preprocess.type=imagenet_code")
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "preprocess.crop=224, but backbone" in stderr and "takes 32 px" in stderr


def _head():
    torch.manual_seed(0)
    return torch.nn.Linear(8, 5)


def test_disalign_classification_form_starts_at_one_plus_s_times_z():
    head = _head()
    features = torch.randn(6, 8)
    aligned = DisAlignHead(head, confidence_weight=0.1)  # cvpods: every confidence weight 0.1
    with torch.no_grad():
        aligned.confidence.bias.fill_(-0.3)
    s = torch.sigmoid(0.1 * features.sum(1, keepdim=True) - 0.3)  # w^T f + b with w = 0.1
    torch.testing.assert_close(aligned(features), (1 + s) * head(features))
    trainable = {name for name, p in aligned.named_parameters() if p.requires_grad}
    assert trainable == {"confidence.weight", "confidence.bias", "alpha", "beta"}
    # Without confidence_weight the layer keeps PyTorch's init (Imbalance-VLM's DisAlign_Net).
    torch.manual_seed(1)
    default = DisAlignHead(head)
    assert not torch.allclose(default.confidence.weight, torch.full_like(default.confidence.weight, 0.1))


def test_disalign_classification_formula_after_changing_alpha_and_beta():
    head = _head()
    aligned = DisAlignHead(head)
    with torch.no_grad():
        aligned.alpha.fill_(2.0)
        aligned.beta.fill_(0.5)
    features = torch.randn(3, 8)
    z = head(features)
    s = torch.sigmoid(aligned.confidence(features))
    torch.testing.assert_close(aligned(features), (1 + 2.0 * s) * z + 0.5 * s)


def test_disalign_segmentation_form_starts_at_the_stage_1_logits():
    head = _head()
    features = torch.randn(6, 8)
    aligned = DisAlignHead(head, form="segmentation")
    torch.testing.assert_close(aligned(features), head(features))
    with torch.no_grad():
        aligned.alpha.fill_(2.0)
        aligned.beta.fill_(0.5)
    z, s = head(features), torch.sigmoid(aligned.confidence(features))
    torch.testing.assert_close(aligned(features), s * (2.0 * z + 0.5) + (1 - s) * z)
    with pytest.raises(UserError, match="stage2.disalign_form"):
        DisAlignHead(head, form="detection")


def test_marc_starts_at_the_stage_1_logits_and_adds_beta_times_the_row_norms():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))  # row norms 5 and 2
        head.bias.copy_(torch.tensor([1.0, -1.0]))
    marc = MarcHead(head)
    features = torch.tensor([[1.0, 1.0]])  # z = [3 + 4 + 1, 2 - 1] = [8, 1]
    torch.testing.assert_close(marc(features), torch.tensor([[8.0, 1.0]]))
    with torch.no_grad():
        marc.omega.copy_(torch.tensor([0.5, 2.0]))
        marc.beta.copy_(torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(marc(features), torch.tensor([[0.5 * 8 + 5.0, 2.0 * 1 - 2.0]]))
    assert {name for name, p in marc.named_parameters() if p.requires_grad} == {"omega", "beta"}


class ImbalanceVlmMarc(torch.nn.Module):
    """Transcription of Imbalance-VLM's MARC_Net (imblearn/algorithms/supervised/utils.py) in its
    stage 2 (freeze_backbone: the backbone's logits under no_grad, then only_fc)."""

    def __init__(self, head):
        super().__init__()
        self.backbone = head
        self.a = torch.nn.Parameter(torch.ones(1, head.out_features))
        self.b = torch.nn.Parameter(torch.zeros(1, head.out_features))
        self.w_norm = torch.norm(head.weight.data, dim=1)

    def forward(self, features):
        with torch.no_grad():
            logits = self.backbone(features)
        return self.a * logits + self.b * self.w_norm


class ImbalanceVlmDisAlign(torch.nn.Module):
    """Transcription of Imbalance-VLM's DisAlign_Net (same file), stage 2 as above."""

    def __init__(self, head, confidence_layer):
        super().__init__()
        self.backbone = head
        self.logit_scale = torch.nn.Parameter(torch.ones(1, head.out_features))
        self.logit_bias = torch.nn.Parameter(torch.zeros(1, head.out_features))
        self.confidence_layer = confidence_layer

    def forward(self, features):
        with torch.no_grad():
            x = self.backbone(features)
        confidence = self.confidence_layer(features).sigmoid()
        return (1 + confidence * self.logit_scale) * x + confidence * self.logit_bias


def imbalance_vlm_sgd(model, lr, momentum, weight_decay):
    """Transcription of Imbalance-VLM's get_optimizer (imblearn/core/utils/build.py: SGD, nesterov)
    over param_groups_weight_decay (imblearn/nets/utils.py): no decay on 1-D parameters and on
    names ending in '.bias', weight_decay on the rest."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return torch.optim.SGD([{"params": no_decay, "weight_decay": 0.}, {"params": decay, "weight_decay": weight_decay}],
                           lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


@pytest.mark.parametrize("method, pairs", [
    ("decoder_marc", {"omega": "a", "beta": "b"}),
    ("decoder_disalign", {"alpha": "logit_scale", "beta": "logit_bias", "confidence.weight": "confidence_layer.weight",
                          "confidence.bias": "confidence_layer.bias"}),
])
def test_second_stage_steps_are_imbalance_vlms_with_its_weight_decay(method, pairs):
    # The recipe's stage-2 optimiser (decoder.yaml) on ltbench's head against the code's on its
    # net: the per-class vectors are in its decay group (5e-4), only the confidence bias is not.
    stage2 = resolve(RunRequest(method=method, dataset="imagenet_lt", backbone="ViT-B-16:openai", seed=0))["stage2"]
    settings = train_settings({**stage2, "warmup_epochs": 0}, "stage2")  # the decoder computes it from iterations
    head = _head()
    ours = build_second_stage(stage2["type"], head)
    reference = (ImbalanceVlmMarc(copy.deepcopy(head)) if method == "decoder_marc"
                 else ImbalanceVlmDisAlign(copy.deepcopy(head), copy.deepcopy(ours.confidence)))
    optimizers = [build_optimizer([p for p in ours.parameters() if p.requires_grad], settings),
                  imbalance_vlm_sgd(reference, settings["lr"], settings["momentum"], settings["weight_decay"])]
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        features, targets = torch.randn(16, 8, generator=generator), torch.randint(0, 5, (16,), generator=generator)
        for model, optimizer in zip((ours, reference), optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model(features), targets).backward()
            optimizer.step()
    parameters, reference_parameters = dict(ours.named_parameters()), dict(reference.named_parameters())
    for name, reference_name in pairs.items():
        reference_value = reference_parameters[reference_name]
        torch.testing.assert_close(parameters[name].reshape(reference_value.shape), reference_value, rtol=1e-5,
                                   atol=1e-7)
    torch.testing.assert_close(reference.backbone.weight, head.weight)  # the frozen head never moves


def test_tau_normalisation_by_hand_and_the_tau_chosen_on_val():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[4.0, 0.0], [0.0, 1.0]]))  # a head class with a long row
        head.bias.copy_(torch.tensor([5.0, 5.0]))
    features = torch.tensor([[1.0, 2.0], [1.0, 6.0]])
    # tau 0: the bias is dropped, weights unchanged; tau 1: unit rows; tau 0.5: rows / sqrt(norm).
    torch.testing.assert_close(tau_normalised(head, 0.0)(features), torch.tensor([[4.0, 2.0], [4.0, 6.0]]))
    torch.testing.assert_close(tau_normalised(head, 1.0)(features), torch.tensor([[1.0, 2.0], [1.0, 6.0]]))
    torch.testing.assert_close(tau_normalised(head, 0.5)(features), torch.tensor([[2.0, 2.0], [2.0, 6.0]]))
    assert tau_normalised(head, 1.0).bias is None
    # Both samples are class 1: tau 0 gets one right (50%), tau 0.5 the second only too (a tie at
    # 2 vs 2 goes to class 0), tau 1 both.
    tau, accuracies = select_tau(head, features, torch.tensor([1, 1]), [0.0, 0.5, 1.0])
    assert accuracies == [50.0, 50.0, 100.0] and tau == 1.0


def test_lws_starts_at_the_stage_1_logits_and_crt_starts_afresh():
    head = _head()
    features = torch.randn(4, 8)
    assert torch.allclose(LearnableWeightScaling(head)(features), head(features))
    retrained = build_second_stage("crt", head)
    assert not torch.allclose(retrained.weight, head.weight)
    assert all(p.requires_grad for p in retrained.parameters())
    assert not any(p.requires_grad for p in LearnableWeightScaling(head).head.parameters())


def test_iteration_schedule_with_the_codes_32_epochs_is_exactly_8192_steps_on_every_dataset():
    stage = {"batch_size": 256, "iterations": 8192, "warmup_iterations": 512, "epochs": 32}
    for train_images in (115846, 62500, 437513):  # ImageNet-LT, Places-LT, iNat 2018
        assert iteration_schedule(stage, train_images) == (256, 32, 2.0)
    with pytest.raises(UserError, match="stage2.epochs=32 must be null or a whole number from 1 to"):
        resolve(RunRequest("decoder", "imagenet_lt", options=(("stage2.iterations", 10),)))
    with pytest.raises(UserError, match="stage1.select='best'"):
        resolve(RunRequest("decoder", "imagenet_lt", options=(("stage1.select", "best"),)))


def test_iteration_schedule_covers_the_iterations_in_whole_epochs():
    steps, epochs, warmup = iteration_schedule({"batch_size": 256, "iterations": 8192, "warmup_iterations": 512,
                                                "epochs": None}, 115846)
    assert steps == 452 and epochs == 19 and steps * epochs >= 8192 and warmup == pytest.approx(512 / 452)
    assert iteration_schedule({"batch_size": 64, "iterations": 3, "warmup_iterations": 0, "epochs": None}, 380)[:2] \
        == (3, 1)
