"""Model selection on val during training: keep the epoch with the best val top-1."""
from pathlib import Path

import torch

from ltbench.engine.trainer import save_atomic


class BestOnVal:
    """select=best_val: keep the weights of `module` after the epoch with the best val top-1
    (val_logits() -> [N_val, C], labels [N_val]); pass ``update`` as a Trainer's on_epoch_end and
    call ``restore`` after fit. Kept on disk, so that a resumed run still knows the best epoch
    before the interruption; ``summary`` (a dict of the record's details) gets the best epoch and
    its accuracy. (BALLAD's phase_b.select keeps its own, older copy of this logic.)"""

    def __init__(self, module, val_logits, labels, path: Path, resume: bool, summary: dict):
        self.module, self.val_logits, self.labels, self.path, self.summary = module, val_logits, labels, path, summary
        self.best = torch.load(path, weights_only=True) if resume and path.exists() else None

    def update(self, epoch: int) -> str:
        with torch.no_grad():
            accuracy = float((self.val_logits().argmax(1) == self.labels).float().mean()) * 100
        if self.best is None or accuracy > self.best["val_top1"]:
            state = {name: tensor.detach().clone() for name, tensor in self.module.state_dict().items()}
            self.best = {"epoch": epoch, "val_top1": accuracy, "state_dict": state}
            save_atomic(self.best, self.path)
        return f"val top-1 {accuracy:.2f} (best {self.best['val_top1']:.2f}, epoch {self.best['epoch'] + 1})"

    def restore(self):
        if self.best is not None:
            self.module.load_state_dict(self.best["state_dict"])
            self.summary.update(best_epoch=self.best["epoch"] + 1, val_top1=self.best["val_top1"])
