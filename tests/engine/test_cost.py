"""The record's cost block (engine/cost.py) against hand counts on tiny models."""
import gc
import json
import math
from pathlib import Path

import pytest
import torch

from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import TensorBatches
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext
from ltbench.engine.cost import CostMeter, cost_block, parameter_counts, stage_cost_path
from ltbench.engine.stages import Stage
from ltbench.engine.trainer import holds_images

CFG = {"epochs": 2, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0,
       "schedule": "cosine", "warmup_epochs": 0, "grad_accum_steps": 1, "log_interval": 2}


def _context(tmp_path, **options):
    return RunContext(device=torch.device("cpu"), seed=0, work_dir=Path(tmp_path) / "run", cache=ArrayCache(tmp_path / "c"),
                      progress=False, **options)


def _images_model():
    """A frozen 'encoder' (Flatten + Linear 4 -> 5: 25 parameters) and a trained head (5 -> 3: 18)."""
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5))
    encoder.requires_grad_(False)
    return torch.nn.Sequential(encoder, torch.nn.Linear(5, 3))


def _fit(ctx, model, name="unit", images=70, batch=16, cfg=CFG):
    inputs = torch.randn(images, 1, 2, 2)  # image batches: 4-D float
    targets = torch.arange(images) % 3
    batches = TensorBatches(inputs, targets, build_sampler("instance", targets.numpy(), seed=0), batch)
    ctx.trainer(cfg, name=name).fit(model, batches, batches.steps_per_epoch, torch.nn.functional.cross_entropy)
    return batches.steps_per_epoch


def test_trainer_counts_parameters_steps_and_images_exactly(tmp_path):
    ctx = _context(tmp_path)
    steps = _fit(ctx, _images_model())
    entry = ctx.outputs.cost.training["unit"]
    # 70 images in batches of 16: 5 steps an epoch (TensorBatches drops no rows: 4 x 16 + 6), 2 epochs.
    assert steps == 5
    assert entry["optimizer_steps"] == 10 and entry["epochs"] == 2
    assert entry["samples"] == 140 and entry["image_samples"] == 140
    assert entry["trained_parameters"] == 5 * 3 + 3 and entry["frozen_parameters"] == 4 * 5 + 5
    assert entry["modules"] == {"0": {"trained": 0, "frozen": 25}, "1": {"trained": 18, "frozen": 0}}


def test_gradient_accumulation_counts_optimizer_updates_not_batches(tmp_path):
    ctx = _context(tmp_path)
    _fit(ctx, _images_model(), cfg={**CFG, "grad_accum_steps": 2})
    entry = ctx.outputs.cost.training["unit"]
    assert entry["optimizer_steps"] == 2 * 3  # ceil(5 / 2) updates an epoch
    assert entry["samples"] == 140


def test_feature_batches_are_not_images():
    assert holds_images(torch.zeros(2, 3, 4, 4)) and holds_images((torch.zeros(2, 5), torch.zeros(2, 3, 4, 4)))
    assert not holds_images(torch.zeros(2, 5)) and not holds_images(torch.zeros(2, 7, 5))
    assert not holds_images(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


class _Wrapper:  # an encoder wrapper that is no nn.Module (as models/clip.py's backbones)
    def __init__(self, model):
        self.model = model


class _Method:
    def __init__(self, encoder, head):
        self.cfg = {"unused": torch.nn.Linear(100, 100)}  # the config is never walked
        self.encoder = _Wrapper(encoder)
        self.heads = [head, head]  # one head, held twice: counted once
        self.shared = encoder[1].weight  # a bare tensor: not a module


def test_parameters_of_every_held_module_are_counted_once_trained_or_frozen(tmp_path):
    ctx = _context(tmp_path)
    model = _images_model()
    _fit(ctx, model)
    method = _Method(model[0], model[1])
    counts = parameter_counts(method, ctx.outputs.cost)
    assert counts == {"trained": 18, "frozen": 25,
                      "modules": {"encoder": {"trained": 0, "frozen": 25}, "heads": {"trained": 18, "frozen": 0}}}


def test_a_module_trained_but_not_kept_is_counted_too(tmp_path):
    ctx = _context(tmp_path)
    _fit(ctx, _images_model())

    class Empty:
        pass

    counts = parameter_counts(Empty(), ctx.outputs.cost)
    assert counts["trained"] == 18 and counts["frozen"] == 25 and "(trainer only)" in counts["modules"]


def test_a_freed_parameter_is_still_counted_and_its_id_is_free_for_new_tensors(tmp_path):
    ctx = _context(tmp_path)
    model = _images_model()
    _fit(ctx, model)
    freed_ids = {id(param) for param in model.parameters()}
    del model
    gc.collect()
    meter = ctx.outputs.cost
    # Python may give a freed parameter's address (its id) to a new tensor: that one starts unknown.
    assert not freed_ids & set(meter.parameters)
    head = torch.nn.Linear(5, 3)  # held by the method, never trained

    class HoldsHead:
        pass

    method = HoldsHead()
    method.head = head
    counts = parameter_counts(method, meter)
    assert counts["modules"]["head"] == {"trained": 0, "frozen": 18}
    assert counts["modules"]["(trainer only)"] == {"trained": 18, "frozen": 25}


def test_a_reused_stage_is_counted_apart_with_the_cost_it_had(tmp_path):
    stage = Stage("unit_stage", "unit stage", "stage.pt", "unit_checkpoint")

    def run_once():
        ctx = _context(tmp_path)
        model = _images_model()

        def train(work_dir):
            trainer_ctx = ctx
            _fit(trainer_ctx, model, name="stage")
            return model.state_dict(), trainer_ctx.trainer(CFG, name="stage")

        stage.reuse_or_train(ctx, "tiny", {"a": 1}, load=lambda path: model.load_state_dict(torch.load(path)),
                             train=train)
        return ctx, model

    first, model = run_once()
    block = cost_block(first.outputs.cost, _Method(model[0], model[1]), {"total": 36.0}, {}, 1, "cpu")
    assert block["this_run"]["optimizer_steps"] == 10 and block["reused"]["optimizer_steps"] == 0
    assert block["this_run"]["device_hours"] == pytest.approx(0.01)
    stored = json.loads(stage_cost_path(Path(first.outputs.artifacts["unit_checkpoint"])).read_text())
    assert stored["training"]["stage"]["optimizer_steps"] == 10 and stored["training"]["stage"]["samples"] == 140

    second, model = run_once()
    block = cost_block(second.outputs.cost, _Method(model[0], model[1]), {"total": 3.6}, {}, 2, "cpu")
    assert block["this_run"]["optimizer_steps"] == 0 and block["this_run"]["samples"] == 0
    assert block["reused"]["optimizer_steps"] == 10 and block["reused"]["samples"] == 140
    assert block["from_scratch"]["optimizer_steps"] == 10
    assert block["parameters"]["trained"] == 0 and block["parameters"]["trained_in_reused_stages"] == 18
    assert block["parameters"]["trained_from_scratch"] == 18 and block["parameters"]["frozen_from_scratch"] == 25
    assert block["this_run"]["device_hours"] == pytest.approx(2 * 3.6 / 3600)
    assert block["from_scratch"]["device_hours"] == pytest.approx(2 * 3.6 / 3600 + stored["device_hours"])


def test_parts_of_a_run_share_its_meter_under_their_own_names(tmp_path):
    ctx = _context(tmp_path)
    _fit(ctx.for_part("member"), _images_model(), name="train")
    _fit(ctx, _images_model(), name="train")
    assert set(ctx.outputs.cost.training) == {"member.train", "train"}


def test_peaks_and_wall_time_per_stage_come_from_the_timed_stages():
    stages = {"fit": {"precision": "fp32", "peak_device_bytes": 300, "peak_host_bytes": 10},
              "predict": {"precision": "fp32", "peak_device_bytes": 500, "peak_host_bytes": 7}}
    block = cost_block(CostMeter(), _Method(torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(1, 1)),
                                            torch.nn.Linear(1, 1)),
                       {"fit": 1.0, "predict": 2.0, "total": 3.0}, stages, 1, "cuda")
    assert block["peak_device_bytes"] == 500 and block["peak_host_bytes"] == 10
    assert block["peaks"]["fit"] == {"device_bytes": 300, "host_bytes": 10}
    assert block["wall_seconds"] == {"fit": 1.0, "predict": 2.0, "total": 3.0}


@pytest.mark.slow
def test_a_run_counts_the_images_it_encodes_and_those_the_cache_served(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("LTBENCH_CACHE", str(tmp_path / "cache"))  # a cold cache
    out = tmp_path / "results"

    def run(seed):
        code, _, err = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--backbone", "tiny",
                               "--seed", seed, "--out", out, "--no-progress", "--cfg-options", "train.epochs=2")
        assert code == 0, err
        [path] = (out / "runs" / "digits_lt").glob(f"*seed{seed}.json")
        record = json.loads(path.read_text())
        return {**record["cost"], "batch_size": record["config"]["batch_size"]}

    # digits_lt: 360 train, 100 val, 300 test images, each through the frozen encoder once.
    first, second = run(0), run(1)
    assert first["this_run"]["encoder_images_forward"] == 760 and first["reused"]["encoder_images_forward"] == 0
    assert second["this_run"]["encoder_images_forward"] == 0 and second["reused"]["encoder_images_forward"] == 760
    assert first["from_scratch"]["encoder_images_forward"] == second["from_scratch"]["encoder_images_forward"]
    # The head: 64-d tiny features to 10 classes; 2 epochs of ceil(360 / batch) steps.
    assert first["parameters"]["trained"] == 10 * 64 + 10
    assert first["this_run"]["optimizer_steps"] == 2 * math.ceil(360 / first["batch_size"])
    assert first["this_run"]["samples"] == 720 and first["training"]["linear_probe"]["epochs"] == 2
    assert first["reused"]["device_hours_known"] is True and second["reused"]["device_hours_known"] is False
