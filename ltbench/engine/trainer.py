"""The training loop every method shares.

SGD / AdamW, linear warmup + cosine (stepped per optimizer step, so the last epoch does not run
at lr 0), bf16 autocast on CUDA, gradient accumulation, tqdm progress (loss, lr, images/s), a
checkpoint after every epoch and exact resume: sampler order depends only on (seed, epoch), and
model, optimizer and scheduler states are restored.

Under torchrun the module trains in DistributedDataParallel (see core/distributed.py: the
batches a method builds are already this process's share of the global batch); rank 0 writes
the checkpoints and every process can resume from them. Models with convolutions train in
channels_last (on the CPU: convolutional backbones, see uses_channels_last); SGD and AdamW use
torch's fused kernels where they apply; ``runtime.compile`` runs the module through torch.compile.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from ltbench.config.options import value_error
from ltbench.core import distributed
from ltbench.core.atomic import torch_save_atomic
from ltbench.core.errors import UserError, unknown_name
from ltbench.core.seeding import reseed, seeded
from ltbench.engine.hooks import Hook
from ltbench.engine.options import OPTIMIZERS, SCHEDULES, TRAINING, WARMUP_TYPES  # noqa: F401
from ltbench.engine.transfer import to_device, uses_channels_last

# The trainer's settings: the options of TRAINING (engine/options.py, where each is declared once
# with its type, range, default and help) but its sampler, which the method draws batches with.
TRAINER_OPTIONS = TRAINING.without("sampler")
TRAINER_KEYS = tuple(TRAINER_OPTIONS.options)


FUSED_DEVICES = ("cpu", "cuda")
FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def optimizer_implementation(params) -> dict:
    """{'fused': True} when torch's fused SGD / AdamW kernels take every parameter (floating,
    all on one CPU or CUDA device type), else {} (torch's default: foreach on CUDA, the
    per-parameter loop on the CPU). Same update rule; fused AdamW rounds differently by ~1e-7
    relative and steps a 512k-parameter head about 3x faster on one CPU thread."""
    params = list(params)
    kinds = {p.device.type for p in params}
    if len(kinds) == 1 and kinds <= set(FUSED_DEVICES) and all(p.dtype in FUSED_DTYPES for p in params):
        return {"fused": True}
    return {}


def build_optimizer(params, cfg, lr_scales: Optional[Sequence[Tuple[float, Sequence]]] = None) -> torch.optim.Optimizer:
    """SGD / AdamW over `params`. lr_scales: (factor, parameters) pairs that together hold every
    one of `params`, each trained at factor x cfg['lr'] (a fine-tuned encoder below its head);
    the schedule then scales every group's lr alike."""
    params = list(params)
    implementation = optimizer_implementation(params)
    groups = _lr_groups(params, lr_scales, float(cfg["lr"]))
    if not cfg["weight_decay_1d"]:
        groups = [{**group, "params": [p for p in group["params"] if p.ndim > 1]} for group in groups] + \
                 [{**group, "params": [p for p in group["params"] if p.ndim <= 1], "weight_decay": 0.0}
                  for group in groups]
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"],
                               nesterov=bool(cfg["nesterov"]), weight_decay=cfg["weight_decay"], **implementation)
    if cfg["optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"], **implementation)
    raise unknown_name("optimizer", cfg["optimizer"], OPTIMIZERS)


def _lr_groups(params, lr_scales, lr: float) -> list:
    if lr_scales is None:
        return [{"params": params}]
    grouped = [(float(factor), list(group)) for factor, group in lr_scales]
    members = [id(p) for _, group in grouped for p in group]
    if sorted(members) != sorted(id(p) for p in params):
        raise ValueError("lr_scales must hold every trainable parameter exactly once")
    return [{"params": group, "lr": lr * factor} for factor, group in grouped]


def warmup_cosine(total_steps: int, warmup_steps: int, schedule: str,
                  cosine_cycles: float = 7 / 16, warmup_factor: Optional[float] = None,
                  steps_per_epoch: Optional[int] = None) -> Callable[[int], float]:
    """lr factor of optimizer step `step` (0-based).

    cosine: warmup (step + 1) / warmup_steps, then 0.5 * (1 + cos(pi * progress)), down to 0.
    cosine_usb: USB's get_cosine_schedule_with_warmup, which Imbalance-VLM trains with: warmup
    step / warmup_steps (so the first step runs at lr 0), then max(0, cos(pi * cosine_cycles *
    progress)); with its 7/16 the lr ends at cos(7 pi / 16) = 0.195 of the base, not at 0.
    cosine_epoch: torch's CosineAnnealingLR(T_max=epochs) stepped once per epoch (steps_per_epoch
    steps) and started afresh after the warmup, as Dassl's warmup wrapper runs it for CoOp: the
    k-th epoch after the warmup runs at 0.5 * (1 + cos(pi * k / epochs)), so the lr is constant
    within an epoch and never reaches 0 (with no warmup: LIFT's CosineAnnealingLR(num_epochs)).
    constant: the same warmup as cosine, then 1. progress = (step - warmup) / (total - warmup).
    warmup_factor: every warmup step runs at this constant factor instead of the ramp (CoOp's
    constant warmup, warmup_lr / lr).
    """
    if schedule not in SCHEDULES:
        raise unknown_name("lr schedule", schedule, SCHEDULES)
    if schedule == "cosine_usb" and not (isinstance(cosine_cycles, (int, float)) and 0 < cosine_cycles <= 1):
        raise UserError(f"cosine_cycles={cosine_cycles!r} must be a number in (0, 1] (USB's 7/16 = 0.4375)")
    if schedule == "cosine_epoch" and not (steps_per_epoch and steps_per_epoch >= 1):
        raise ValueError("schedule cosine_epoch needs steps_per_epoch >= 1")

    def progress(step: int) -> float:
        return min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))

    def factor(step: int) -> float:
        if warmup_factor is not None and step < warmup_steps:
            return float(warmup_factor)
        if schedule == "cosine_usb":
            if step < warmup_steps:
                return step / warmup_steps
            return max(0.0, math.cos(math.pi * cosine_cycles * progress(step)))
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        if schedule == "cosine_epoch":
            epochs_done = (step - warmup_steps) // steps_per_epoch
            return 0.5 * (1.0 + math.cos(math.pi * epochs_done / max(1, total_steps // steps_per_epoch)))
        return 0.5 * (1.0 + math.cos(math.pi * progress(step)))

    return factor


def holds_images(inputs) -> bool:
    """Whether a training batch holds images (a 4-D floating tensor, alone or among the inputs),
    i.e. the trained module runs an image encoder forward and backward on them; features and
    tokens are 2-D / 3-D."""
    if isinstance(inputs, (tuple, list)):
        return any(holds_images(item) for item in inputs)
    return isinstance(inputs, torch.Tensor) and inputs.dim() == 4 and inputs.is_floating_point()


def save_atomic(state: dict, path: Path):
    """torch.save through the atomic writer. In a distributed run only rank 0 writes: every
    process holds the same state."""
    if distributed.is_main():
        torch_save_atomic(state, path)


def train_settings(section: dict, name: str) -> dict:
    """The trainer's settings out of a method's training section (which holds its own keys too:
    sampler, batch size, ...). A section of a resolved config has them all, checked; one a method
    builds by hand takes TRAINING's default for each it leaves out, and its values are checked
    here as the resolver checks a config's."""
    settings = {key: section.get(key, option.default) for key, option in TRAINER_OPTIONS.options.items()}
    for key, option in TRAINER_OPTIONS.options.items():
        expected = option.problem(settings[key])
        if expected is not None:
            raise value_error(f"{name}.{key}", settings[key], option, expected, f"given to the trainer ({name})")
    for check in TRAINER_OPTIONS.checks:
        check(settings, name)
    return settings


def warmup_factor(cfg: dict) -> Optional[float]:
    """The constant lr factor of the warmup steps (warmup_type constant: warmup_lr / lr), or None
    for the linear ramp."""
    if cfg["warmup_type"] == "linear":
        return None
    return float(cfg["warmup_lr"]) / float(cfg["lr"])


@dataclass
class _Loop:
    """What one ``Trainer.fit`` call trains with, set up once before its first epoch."""

    model: torch.nn.Module  # the method's module (its state_dict goes into checkpoints)
    module: torch.nn.Module  # what steps run: the model, wrapped for DDP and / or compiled
    wrapped: torch.nn.Module  # the DDP wrapper (or the model), whose gradient sync a step toggles
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: Callable[[int], Iterable]
    steps_per_epoch: int
    loss_fn: Callable
    forward: Callable
    hooks: Sequence[Hook]
    channels_last: bool
    accum: int
    start_epoch: int  # 0, or the first epoch a resumed checkpoint has not done
    history: List[dict]  # the per-epoch history (a resumed run's done epochs first)
    cost: dict  # this trainer's counters in the run's cost meter (engine/cost.py)


class _EpochMeter:
    """An epoch's loss, images/s and progress bar. The loss is summed on the device and read back
    (a host sync) only every log_interval steps and at the epoch's end."""

    def __init__(self, name: str, epoch: int, epochs: int, steps: int, log_interval: int, ctx):
        self.log_interval, self.device = log_interval, ctx.device
        self.processes = distributed.get_world_size()
        self.started = time.perf_counter()
        self.seen, self.running_loss, self.running_steps = 0, torch.zeros((), device=ctx.device), 0
        self.epoch_loss, self.logged_steps = 0.0, 0
        self.bar = tqdm(total=steps, desc=f"{name} {epoch + 1}/{epochs}", disable=not ctx.show_progress,
                        leave=False, dynamic_ncols=True)

    def step(self, loss: torch.Tensor, batch_size: int, last: bool, lr: float):
        self.running_loss += loss
        self.running_steps += 1
        self.seen += batch_size * self.processes
        # .item() synchronises with the device: only at logging intervals (where the processes of
        # a distributed run also average their losses).
        if self.running_steps == self.log_interval or last:
            mean_loss = distributed.mean(self.running_loss).item() / self.running_steps
            self.epoch_loss += mean_loss * self.running_steps
            self.logged_steps += self.running_steps
            self.running_loss.zero_()
            self.running_steps = 0
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}",
                                 img_s=f"{self.seen / max(1e-9, time.perf_counter() - self.started):.0f}")
        self.bar.update(1)

    def entry(self, epoch: int, lr: float) -> dict:
        """The epoch's line of the training history."""
        self.bar.close()
        seconds = time.perf_counter() - self.started
        return {"epoch": epoch, "loss": self.epoch_loss / max(1, self.logged_steps), "lr": lr, "seconds": seconds,
                "images_per_second": self.seen / max(1e-9, seconds)}


class Trainer:
    """The one training loop (module docstring); a method gets one from ``ctx.trainer(section,
    name=..., work_dir=..., identity=...)`` and calls ``fit``."""

    def __init__(self, ctx, cfg: dict, name: str = "train", work_dir=None, identity=None):
        """cfg: the method's training section (train_settings reads the trainer's keys from it).
        work_dir: where the epoch checkpoint goes (default ctx.work_dir). identity: anything
        JSON-like that must match for --resume to continue a checkpoint (e.g. a hash of the
        frozen model the head trains on), besides the training settings."""
        self.ctx, self.name, self.identity = ctx, name, identity
        self.cfg = train_settings(cfg, name)
        self.checkpoint_path = Path(work_dir or ctx.work_dir) / f"{name}_last.pt"
        # A shared stage (its own work_dir) serves runs of several methods: its checkpoint is tied
        # to the data, not to one method's code.
        self.data_identity = dict(ctx.data_identity or {})
        if work_dir is not None:
            self.data_identity.pop("method_code", None)

    def fit(self, model: torch.nn.Module, batches: Callable[[int], Iterable], steps_per_epoch: int,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            forward: Optional[Callable[[torch.nn.Module, object], torch.Tensor]] = None,
            hooks: Sequence[Hook] = (), lr_scales: Optional[Sequence[Tuple[float, Sequence]]] = None) -> List[dict]:
        """Train `model` (its parameters with requires_grad) for cfg['epochs'] epochs; returns the
        per-epoch history ({epoch, loss, lr, seconds, images_per_second} each).

        batches(epoch) yields (inputs, targets) on any device, inputs a tensor or a tuple of
        tensors (TensorBatches, epoch_batches, ...), steps_per_epoch of them; forward(module,
        inputs) -> logits (default module(inputs)); loss_fn(logits, targets) -> scalar, logits in
        float32; hooks: engine/hooks.py (before_epoch, after_step, after_epoch with its note for
        the log, after_fit); lr_scales: (factor, parameters) pairs covering the trainable ones
        (see build_optimizer; the log and history show the first group's lr).

        In a distributed run forward gets the DDP-wrapped (or compiled) module, so it must call
        it rather than reach into its attributes, and every trainable parameter must take part
        in the loss (DDP waits for all gradients before it all-reduces them).
        """
        # What training draws from torch's global RNG (dropout) comes from (seed, name, epoch):
        # not from what ran before (a cold or warm cache), and a resumed epoch draws the same.
        with seeded(self.ctx.seed, "trainer", self.name):
            loop = self._set_up(model, batches, steps_per_epoch, loss_fn, forward, hooks, lr_scales)
            for epoch in range(loop.start_epoch, int(self.cfg["epochs"])):
                loop.history.append(self._train_epoch(loop, epoch))
                self._end_epoch(loop, epoch)
            distributed.barrier()  # every process leaves once rank 0's last checkpoint is on disk
            for hook in loop.hooks:
                hook.after_fit()
            return loop.history

    def _set_up(self, model, batches, steps_per_epoch, loss_fn, forward, hooks, lr_scales) -> _Loop:
        """The optimizer, the warmup + cosine schedule per optimizer update, their states from the
        epoch checkpoint under --resume, and the module the steps run (channels_last, DDP,
        torch.compile)."""
        cfg, ctx = self.cfg, self.ctx
        channels_last = uses_channels_last(model, ctx.device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        optimizer = build_optimizer(params, cfg, lr_scales)
        # What this training costs (engine/cost.py), counted on the host from batch shapes.
        cost = ctx.outputs.cost.trainer(ctx.part + self.name)
        ctx.outputs.cost.note_module(ctx.part + self.name, model,
                                     {id(p) for group in optimizer.param_groups for p in group["params"]})
        accum = max(1, int(cfg["grad_accum_steps"]))
        steps_per_update = math.ceil(steps_per_epoch / accum)
        total_updates = steps_per_update * int(cfg["epochs"])
        warmup = int(round(float(cfg["warmup_epochs"]) * steps_per_update))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total_updates, warmup, cfg["schedule"], cfg["cosine_cycles"],
                                     warmup_factor(cfg), steps_per_update))
        start_epoch, history = self._maybe_resume(model, optimizer, scheduler)
        cost["resumed_epochs"] += start_epoch
        wrapped = distributed.wrap_for_training(model, ctx.device, sync_batchnorm=cfg["sync_batchnorm"])
        module = torch.compile(wrapped) if ctx.compile else wrapped
        return _Loop(model=model, module=module, wrapped=wrapped, optimizer=optimizer, scheduler=scheduler,
                     batches=batches, steps_per_epoch=steps_per_epoch, loss_fn=loss_fn,
                     forward=forward or (lambda module, inputs: module(inputs)), hooks=tuple(hooks),
                     channels_last=channels_last, accum=accum, start_epoch=start_epoch, history=history,
                     cost=cost)

    def _train_epoch(self, loop: _Loop, epoch: int) -> dict:
        """One epoch's steps; returns its line of the history."""
        ctx, epochs = self.ctx, int(self.cfg["epochs"])
        reseed(ctx.seed, "trainer", self.name, epoch)
        loop.module.train()
        for hook in loop.hooks:
            hook.before_epoch(epoch, epochs)
        meter = _EpochMeter(self.name, epoch, self.cfg["epochs"], loop.steps_per_epoch, self.cfg["log_interval"], ctx)
        loop.optimizer.zero_grad(set_to_none=True)
        for step, (inputs, targets) in enumerate(loop.batches(epoch)):
            loss = self._step(loop, step, inputs, targets)
            for hook in loop.hooks:
                hook.after_step(epoch, step, loss)
            batch_size = int(targets.shape[0])  # a shape: known on the host, no sync
            meter.step(loss, batch_size, step + 1 == loop.steps_per_epoch, loop.optimizer.param_groups[0]["lr"])
            loop.cost["samples"] += batch_size * meter.processes
            if holds_images(inputs):
                loop.cost["image_samples"] += batch_size * meter.processes
        loop.cost["epochs"] += 1
        distributed.sync_buffers(loop.model)
        return meter.entry(epoch, loop.optimizer.param_groups[0]["lr"])

    def _step(self, loop: _Loop, step: int, inputs, targets) -> torch.Tensor:
        """Forward, backward and (every accum steps, and at the epoch's end) an optimizer update;
        returns the step's loss, detached, on the device."""
        inputs = to_device(inputs, self.ctx.device, loop.channels_last)
        targets = to_device(targets, self.ctx.device)
        updates = (step + 1) % loop.accum == 0 or step + 1 == loop.steps_per_epoch
        with distributed.gradient_sync(loop.wrapped, enabled=updates):
            with self.ctx.autocast():
                logits = loop.forward(loop.module, inputs)
            loss = loop.loss_fn(logits.float(), targets)
            (loss / loop.accum).backward()
        if updates:
            loop.optimizer.step()
            loop.scheduler.step()
            loop.optimizer.zero_grad(set_to_none=True)
            loop.cost["optimizer_steps"] += 1
        return loss.detach()

    def _end_epoch(self, loop: _Loop, epoch: int):
        """The hooks' after_epoch, the epoch checkpoint (rank 0) and the epoch's log line."""
        ctx, history = self.ctx, loop.history
        entry = history[-1]
        note = ", ".join(filter(None, (hook.after_epoch(epoch) for hook in loop.hooks)))
        measured = [hook.val_top1 for hook in loop.hooks if hook.val_top1 is not None]
        if ctx.val_reporter is not None and measured:
            ctx.val_reporter(self.name, epoch, measured[-1])  # may stop the run (a pruned trial)
        save_atomic({"model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
                     "scheduler": loop.scheduler.state_dict(), "epoch": epoch, "history": history,
                     "config": self.cfg, "identity": self.identity, "data": self.data_identity},
                    self.checkpoint_path)
        if ctx.progress:
            ctx.log(f"{self.name} epoch {epoch + 1}/{self.cfg['epochs']}: loss {entry['loss']:.4f}, "
                    f"{entry['images_per_second']:.0f} img/s" + (f", {note}" if note else ""))

    def remove_checkpoint(self):
        """Drop the epoch checkpoint once a finished stage has been saved in its own file."""
        if distributed.is_main():
            self.checkpoint_path.unlink(missing_ok=True)

    def _maybe_resume(self, model, optimizer, scheduler):
        if not self.ctx.resume:
            return 0, []
        # Every process must take the same branch: all resume from the checkpoint, or none does.
        found = self.checkpoint_path.exists()
        if not distributed.all_true(found):
            if distributed.all_true(not found):
                return 0, []
            raise UserError(f"--resume: {self.checkpoint_path} is not visible to every process; "
                            "put --out on a folder that all machines share")
        try:
            # weights_only: tensors, containers and numbers, what the trainer writes; no unpickling.
            state = torch.load(self.checkpoint_path, map_location=self.ctx.device, weights_only=True)
        except Exception as error:  # truncated or garbage: RuntimeError, EOFError, UnpicklingError, ...
            raise UserError(f"--resume: cannot read the epoch checkpoint {self.checkpoint_path} "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}); "
                            "delete it, or rerun without --resume to start over") from None
        if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "epoch", "history"} <= set(state):
            raise UserError(f"--resume: {self.checkpoint_path} is not an ltbench epoch checkpoint; "
                            "rerun without --resume to start over")
        if state.get("config") != self.cfg or state.get("identity") != self.identity:
            raise UserError(f"{self.checkpoint_path} was written with other training settings; "
                            "rerun without --resume to start over")
        saved_data = state.get("data")
        if saved_data != self.data_identity:
            changed = sorted(key for key in set(saved_data or {}) | set(self.data_identity)
                             if (saved_data or {}).get(key) != self.data_identity.get(key))
            what = ", ".join(changed) if saved_data is not None else "no data identity (an older ltbench)"
            raise UserError(f"--resume: {self.checkpoint_path} was trained on other data or code ({what} "
                            "changed); rerun without --resume to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.ctx.log(f"resumed {self.name} from {self.checkpoint_path} after epoch {state['epoch'] + 1}")
        return state["epoch"] + 1, list(state["history"])
