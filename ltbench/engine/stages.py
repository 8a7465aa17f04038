"""Finished stages shared between runs: reuse one, or train it and keep it.

A stage (BALLAD's phase A, the decoder's stage 1) is kept in a folder beside the run's work
folder, named by the stage, the backbone, a hash of everything its result depends on, and the
seed. Every run that needs the same stage (a rerun, another second stage, a TACKLE teacher)
finds it there instead of training it again. The file is written atomically, so a killed run
never leaves half a stage that a later run would load; the stage's epoch checkpoint (with the
optimizer state) is removed once the stage is saved.
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ltbench.config import config_hash
from ltbench.core import distributed
from ltbench.core.atomic import torch_save_atomic, write_json_atomic
from ltbench.core.names import backbone_slug
from ltbench.engine.checkpoints import read_stage_checkpoint
from ltbench.engine.cost import read_stage_cost, stage_cost, stage_cost_path


@dataclass(frozen=True)
class Stage:
    """A stage shared between runs (a fine-tuned model, a trained first stage): ``reuse_or_train``
    loads it when a run with the same identity left it, or trains and keeps it."""

    name: str  # folder prefix, e.g. 'ballad_phase_a'
    label: str  # for the log, e.g. 'phase A'
    file_name: str  # e.g. 'phase_a.pt'
    artifact: str  # the record's artifacts key, e.g. 'phase_a_checkpoint'

    def read_checkpoint(self, path, option: str, writer: str):
        """A finished stage's file that the user points a run at (``option``, e.g.
        ``stage1.checkpoint``), loaded on the CPU without unpickling code; a missing or unreadable
        file is a one-line error naming the option and the ``writer`` method that writes it."""
        return read_stage_checkpoint(path, option, self.file_name, writer)

    def folder(self, ctx, backbone: str, identity: dict) -> Path:
        if getattr(ctx, "deterministic", False):  # a deterministic run reuses only deterministic stages
            identity = {**identity, "deterministic": True}
        key = config_hash(identity)[:10]
        return ctx.shared_work_dir(f"{self.name}__{backbone_slug(backbone)}__{key}__seed{ctx.seed}")

    def reuse_or_train(self, ctx, backbone: str, identity: dict, load: Callable[[Path], None],
                       train: Callable[[Path], "tuple"]) -> None:
        """load(path) a finished stage, or train(work_dir) -> (state to save, trainer) and save it."""
        work_dir = self.folder(ctx, backbone, identity)
        final = work_dir / self.file_name
        ctx.outputs.artifacts[self.artifact] = str(final.resolve())
        if final.exists():
            ctx.log(f"{self.label}: reusing the finished {self.label} in {final} (delete it to train again)")
            load(final)
            # What training it cost, counted apart from this run's work (engine/cost.py).
            ctx.outputs.cost.reused_stages[work_dir.name] = read_stage_cost(final) or {}
            return
        before, started = ctx.outputs.cost.snapshot(), time.perf_counter()
        state, trainer = train(work_dir)
        if distributed.is_main():
            torch_save_atomic(state, final)
            cost = stage_cost(before, ctx.outputs.cost, time.perf_counter() - started,
                              distributed.get_world_size())
            write_json_atomic(stage_cost_path(final), cost)
        # The epoch checkpoint also holds optimizer state; the saved stage is all later runs need.
        trainer.remove_checkpoint()
        ctx.log(f"{self.label}: saved {final}")
