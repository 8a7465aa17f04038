"""Trainer hooks: what a method adds to the shared training loop (the fraction of training done
for a loss on a schedule, val accuracy in the log, keep the best epoch on val, stop early in a
test) without writing a loop or a callback of its own.

The Trainer calls, in this order (mmengine's hook points, fewer of them):

- ``before_epoch(epoch, epochs)`` at the start of each epoch it trains (a resumed run starts at
  the first epoch not yet done), after the epoch's random state is set and before its first batch
  is drawn;
- ``after_step(epoch, step, loss)`` after each step (``loss``: the step's loss, a detached 0-dim
  tensor on the run's device; reading its value, ``float(loss)``, waits for the device: a hook
  that needs it every step slows training down);
- ``after_epoch(epoch)`` once an epoch's steps are done and before its epoch checkpoint is
  written (so a hook that raises leaves the previous checkpoint as the last one); it may return a
  short note for the epoch's log line;
- ``after_fit()`` once training ends.

Hooks run in the order the method lists them. ``epoch`` and ``step`` count from 0.
"""
from pathlib import Path
from typing import Callable, Optional

import torch

from ltbench.core import distributed
from ltbench.core.atomic import torch_save_atomic


class Hook:
    """The base of every trainer hook: each method does nothing until a subclass overrides it.
    A hook that measures val accuracy after an epoch leaves it in ``val_top1`` (the trainer passes
    it to the run's ``val_reporter``: a tuning trial's pruner)."""

    val_top1: Optional[float] = None

    def before_epoch(self, epoch: int, epochs: int) -> None:
        pass

    def after_step(self, epoch: int, step: int, loss: torch.Tensor) -> None:
        pass

    def after_epoch(self, epoch: int) -> Optional[str]:
        return None

    def after_fit(self) -> None:
        pass


class TrainingProgress(Hook):
    """The fraction of training done when the current epoch starts (``epoch / epochs``: 0 in the
    first epoch), for losses on a schedule (LDAM-DRW): pass ``progress.value`` to the loss, e.g.
    ``loss_fn=lambda logits, targets: loss(logits, targets, counts, progress=progress.value)``."""

    def __init__(self):
        self.value = 0.0

    def before_epoch(self, epoch: int, epochs: int) -> None:
        self.value = epoch / max(1, int(epochs))


def val_top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels).to(torch.as_tensor(logits).device)
    return float((logits.argmax(1) == labels).float().mean()) * 100


class ValAccuracyLog(Hook):
    """'val top-1 X' in each epoch's log line; val_logits() -> [N_val, C]."""

    def __init__(self, val_logits: Callable[[], torch.Tensor], labels):
        self.val_logits, self.labels = val_logits, torch.as_tensor(labels)

    @torch.no_grad()
    def after_epoch(self, epoch: int) -> str:
        self.val_top1 = val_top1(self.val_logits(), self.labels)
        return f"val top-1 {self.val_top1:.2f}"


class BestOnVal(Hook):
    """select=best_val: keep the weights of `module` after the epoch with the best val top-1
    (val_logits() -> [N_val, C], labels [N_val]) and load them back after training. Kept on disk,
    so that a resumed run still knows the best epoch before the interruption; ``summary`` (a dict
    of the record's details) gets the best epoch and its accuracy."""

    def __init__(self, module, val_logits, labels, path: Path, resume: bool, summary: Optional[dict] = None):
        self.module, self.val_logits, self.labels, self.path, self.summary = module, val_logits, labels, path, summary
        # map_location: tensors saved from a GPU would otherwise load onto the GPU they came from
        # (cuda:0 for every process of a torchrun job; an error on a machine without it). On the
        # host: the state is only copied into the module (load_state_dict) after training.
        self.best = torch.load(path, map_location="cpu", weights_only=True) if resume and path.exists() else None

    @torch.no_grad()
    def after_epoch(self, epoch: int) -> str:
        accuracy = self.val_top1 = val_top1(self.val_logits(), self.labels)
        if self.best is None or accuracy > self.best["val_top1"]:
            state = {name: tensor.detach().clone() for name, tensor in self.module.state_dict().items()}
            self.best = {"epoch": epoch, "val_top1": accuracy, "state_dict": state}
            if distributed.is_main():
                torch_save_atomic(self.best, self.path)
        return f"val top-1 {accuracy:.2f} (best {self.best['val_top1']:.2f}, epoch {self.best['epoch'] + 1})"

    def after_fit(self):
        if self.best is not None:
            self.module.load_state_dict(self.best["state_dict"])
            if self.summary is not None:
                self.summary.update(best_epoch=self.best["epoch"] + 1, val_top1=self.best["val_top1"])
