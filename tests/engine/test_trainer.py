import math
from pathlib import Path

import pytest
import torch

from ltbench.core.errors import UserError
from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import TensorBatches
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext
from ltbench.engine.hooks import Hook
from ltbench.engine.trainer import warmup_cosine
from ltbench.engine.transfer import to_device, uses_channels_last

CFG = {"epochs": 4, "optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": False,
       "weight_decay": 1e-4, "schedule": "cosine", "warmup_epochs": 1, "grad_accum_steps": 1,
       "log_interval": 2}


def _context(tmp_path, resume=False, compile=False):
    return RunContext(device=torch.device("cpu"), seed=0, work_dir=Path(tmp_path), cache=ArrayCache(tmp_path / "c"),
                      progress=False, resume=resume, compile=compile)


def _problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(96, 8, generator=generator)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    return inputs, targets


def _train(tmp_path, cfg=CFG, resume=False, interrupt_after_epoch=None, compile=False):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    inputs, targets = _problem()
    batches = TensorBatches(inputs, targets, build_sampler("instance", targets.numpy(), seed=0), 16)

    class Interrupt(Hook):
        def after_epoch(self, epoch):
            if interrupt_after_epoch is not None and epoch == interrupt_after_epoch:
                raise KeyboardInterrupt

    trainer = _context(tmp_path, resume, compile).trainer(cfg, name="unit")
    history = trainer.fit(model, batches, batches.steps_per_epoch, torch.nn.functional.cross_entropy,
                          hooks=[Interrupt()])
    return model, history


def test_schedule_warms_up_then_decays_to_zero():
    factor = warmup_cosine(total_steps=10, warmup_steps=2, schedule="cosine")
    assert [factor(0), factor(1)] == [0.5, 1.0]
    assert factor(2) == pytest.approx(1.0) and factor(10) == pytest.approx(0.0)
    assert factor(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(10, 0, "constant")(9) == 1.0


def test_usb_schedule_matches_imbalance_vlm_hand_computed_values():
    # USB: step / warmup during warmup (step 0 at lr 0), then max(0, cos(pi * 7/16 * progress)).
    factor = warmup_cosine(total_steps=10, warmup_steps=2, schedule="cosine_usb", cosine_cycles=7 / 16)
    assert [factor(0), factor(1), factor(2)] == [0.0, 0.5, 1.0]
    assert factor(6) == pytest.approx(0.7730104534)  # cos(7 pi / 32), progress 1/2
    assert factor(10) == pytest.approx(0.1950903220)  # cos(7 pi / 16): the lr never reaches 0
    # 8192 steps after 512 of warmup: mean post-warmup factor sin(7 pi/16) / (7 pi/16) = 0.7136
    # (the half cosine to 0 averages 0.5).
    long = warmup_cosine(8192 + 512, 512, "cosine_usb")
    assert sum(long(step) for step in range(512, 8192 + 512)) / 8192 == pytest.approx(0.7136, abs=1e-3)


def test_usb_schedule_rejects_a_cycle_count_outside_0_1():
    with pytest.raises(UserError, match="cosine_cycles=2"):
        warmup_cosine(10, 0, "cosine_usb", cosine_cycles=2)


def test_trainer_runs_the_usb_schedule_per_optimizer_step(tmp_path):
    _, history = _train(tmp_path, {**CFG, "schedule": "cosine_usb", "cosine_cycles": 0.4375})
    # 4 epochs of 6 steps, 6 warmup steps: after the last step the scheduler is at step 24 = the end.
    assert history[0]["lr"] == pytest.approx(0.5 * 1.0)  # step 6: warmup done, progress 0
    assert history[-1]["lr"] == pytest.approx(0.5 * math.cos(math.pi * 0.4375))


def test_per_epoch_cosine_holds_the_lr_within_an_epoch_and_restarts_after_the_warmup():
    factor = warmup_cosine(total_steps=12, warmup_steps=3, schedule="cosine_epoch", warmup_factor=0.01,
                           steps_per_epoch=3)
    assert [factor(step) for step in range(12)] == pytest.approx(
        [0.01] * 3 + [1.0] * 3 + [0.5 * (1 + math.cos(math.pi / 4))] * 3 + [0.5] * 3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        warmup_cosine(12, 3, "cosine_epoch")


def test_trainer_runs_the_per_epoch_cosine_per_update_epoch(tmp_path):
    # 4 epochs of 6 steps (3 updates with accumulation 2), 1 warmup epoch: after epoch e the
    # scheduler sits at the first update of epoch e + 1, e epochs past the warmup.
    for accum in (1, 2):
        _, history = _train(tmp_path / str(accum), {**CFG, "schedule": "cosine_epoch", "grad_accum_steps": accum})
        assert [entry["lr"] for entry in history] == pytest.approx(
            [0.5 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])


def test_training_lowers_the_loss(tmp_path):
    _, history = _train(tmp_path)
    assert len(history) == 4 and history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert (tmp_path / "unit_last.pt").exists()


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    reference, _ = _train(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", interrupt_after_epoch=1)
    # The checkpoint of the interrupted epoch was not written; epoch 0's was.
    state = torch.load(tmp_path / "cut" / "unit_last.pt", weights_only=False)
    assert state["epoch"] == 0
    resumed, history = _train(tmp_path / "cut", resume=True)
    assert [entry["epoch"] for entry in history] == [0, 1, 2, 3]
    for a, b in zip(reference.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    from ltbench.core.errors import UserError

    _train(tmp_path)
    with pytest.raises(UserError, match="other training settings"):
        _train(tmp_path, cfg={**CFG, "lr": 0.1}, resume=True)


def test_gradient_accumulation_matches_a_big_batch(tmp_path):
    inputs, targets = _problem()
    results = []
    for batch_size, accum in ((32, 1), (16, 2)):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 3)
        cfg = {**CFG, "epochs": 1, "warmup_epochs": 0, "schedule": "constant", "momentum": 0.0,
               "weight_decay": 0.0, "grad_accum_steps": accum}
        # The same fixed order for both: a sampler over the split order.
        sampler = build_sampler("instance", targets.numpy(), seed=1)
        batches = TensorBatches(inputs, targets, sampler, batch_size)
        _context(tmp_path / f"{accum}").trainer(cfg, name="acc").fit(
            model, batches, batches.steps_per_epoch, torch.nn.functional.cross_entropy)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


@pytest.mark.slow  # torch.compile: outside the inner loop
def test_compiled_module_trains_like_the_eager_one(tmp_path, monkeypatch):
    # Inductor needs a C++ build on the CPU (over 30 s here): the eager backend still runs the
    # module through TorchDynamo, which is what the trainer's wiring is about.
    compiled = []
    real_compile = torch.compile

    def eager_compile(module, **options):
        compiled.append(module)
        return real_compile(module, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", eager_compile)
    reference, _ = _train(tmp_path / "eager")
    model, history = _train(tmp_path / "compiled", compile=True)
    assert compiled == [model] and len(history) == 4
    for a, b in zip(reference.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    state = torch.load(tmp_path / "compiled" / "unit_last.pt", weights_only=False)
    assert set(state["model"]) == {"weight", "bias"}  # the module's own keys, resumable without compile


def test_convolutional_models_train_in_channels_last_on_cuda_only():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    assert uses_channels_last(conv, torch.device("cuda")) and uses_channels_last(conv, torch.device("cuda", 1))
    assert not uses_channels_last(conv, torch.device("cpu"))
    assert not uses_channels_last(torch.nn.Linear(4, 2), torch.device("cuda"))
    images, prompts = to_device((torch.randn(2, 3, 8, 8), torch.ones(2, 5, dtype=torch.long)),
                                torch.device("cpu"), channels_last=True)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert prompts.is_contiguous() and prompts.dtype == torch.long


def test_a_section_built_by_hand_takes_the_declared_defaults_and_is_checked():
    from ltbench.engine.options import TRAINING
    from ltbench.engine.trainer import train_settings

    section = {key: value for key, value in CFG.items() if key != "lr"}
    settings = train_settings({**section, "sampler": "instance"}, "phase_a")  # its own keys are left out
    assert settings["lr"] == TRAINING.options["lr"].default and "sampler" not in settings
    assert settings["weight_decay_1d"] is True and settings["warmup_type"] == "linear"
    with pytest.raises(UserError, match=r"phase_a.lr=0: expected a finite number > 0 \(learning rate\)"):
        train_settings({**CFG, "lr": 0}, "phase_a")


class _Recorder(Hook):
    """Every hook call, in order, with its arguments."""

    def __init__(self, calls):
        self.calls = calls

    def before_epoch(self, epoch, epochs):
        self.calls.append(("before_epoch", epoch, epochs))

    def after_step(self, epoch, step, loss):
        self.calls.append(("after_step", epoch, step, loss))

    def after_epoch(self, epoch):
        self.calls.append(("after_epoch", epoch))
        return f"note {epoch}"

    def after_fit(self):
        self.calls.append(("after_fit",))


def test_hooks_are_called_in_order_with_the_epoch_the_step_and_its_loss(tmp_path):
    from ltbench.engine.hooks import TrainingProgress

    inputs, targets = _problem()
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    batches = TensorBatches(inputs, targets, build_sampler("instance", targets.numpy(), seed=0), 32)  # 3 steps
    calls, progress, seen = [], TrainingProgress(), []

    class Progress(Hook):  # what TrainingProgress holds while an epoch's steps run
        def after_step(self, epoch, step, loss):
            seen.append((epoch, progress.value))

    cfg = {**CFG, "epochs": 2, "log_interval": 1}
    history = _context(tmp_path).trainer(cfg, name="hooks").fit(
        model, batches, batches.steps_per_epoch, torch.nn.functional.cross_entropy,
        hooks=[_Recorder(calls), progress, Progress()])
    names = [call[:3] for call in calls]
    assert names == [("before_epoch", 0, 2), ("after_step", 0, 0), ("after_step", 0, 1), ("after_step", 0, 2),
                     ("after_epoch", 0), ("before_epoch", 1, 2), ("after_step", 1, 0), ("after_step", 1, 1),
                     ("after_step", 1, 2), ("after_epoch", 1), ("after_fit",)]
    losses = [call[3] for call in calls if call[0] == "after_step"]
    # Each step's own loss: detached 0-dim tensors on the run's device whose mean is the epoch's logged loss.
    assert all(loss.dim() == 0 and not loss.requires_grad and loss.device.type == "cpu" for loss in losses)
    for epoch in (0, 1):
        assert history[epoch]["loss"] == pytest.approx(float(torch.stack(losses[3 * epoch: 3 * epoch + 3]).mean()))
    assert seen == [(0, 0.0)] * 3 + [(1, 0.5)] * 3


def test_a_resumed_fit_calls_before_epoch_from_the_first_epoch_not_done(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_after_epoch=1)
    calls = []
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    inputs, targets = _problem()
    batches = TensorBatches(inputs, targets, build_sampler("instance", targets.numpy(), seed=0), 16)
    _context(tmp_path, resume=True).trainer(CFG, name="unit").fit(
        model, batches, batches.steps_per_epoch, torch.nn.functional.cross_entropy, hooks=[_Recorder(calls)])
    assert [call[1] for call in calls if call[0] == "before_epoch"] == [1, 2, 3]


def test_fit_shows_its_arguments():
    import inspect

    from ltbench.engine.trainer import Trainer

    parameters = list(inspect.signature(Trainer.fit).parameters)
    assert parameters == ["self", "model", "batches", "steps_per_epoch", "loss_fn", "forward", "hooks", "lr_scales"]
