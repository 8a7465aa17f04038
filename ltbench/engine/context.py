"""RunContext: the services a method gets from the harness (device, seed, cache, trainer, timers)."""
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import torch
from tqdm.auto import tqdm

from ltbench.core import distributed
from ltbench.engine.cache import ArrayCache


def resolve_device(name: str = "auto") -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        text = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    else:
        text = str(device)
    processes = distributed.get_world_size()
    return f"{text}, {processes} processes (DDP)" if processes > 1 else text


@dataclass
class RunContext:
    device: torch.device
    seed: int
    work_dir: Path
    cache: ArrayCache
    amp: bool = True
    num_workers: int = 0
    # The user's choice, the same in every process of a distributed run (methods may branch
    # on it); only rank 0 shows bars and logs (show_progress, log).
    progress: bool = True
    resume: bool = False
    compile: bool = False  # torch.compile the module the trainer trains
    timings: Dict[str, float] = field(default_factory=dict)
    # label -> (logits, split): evaluations a method reports besides its final one, e.g. the
    # model after phase A of a two-phase method; the runner turns them into metrics.
    reported: Dict[str, tuple] = field(default_factory=dict)
    # name -> path of files a run leaves for later runs (e.g. a phase-A checkpoint), recorded.
    artifacts: Dict[str, str] = field(default_factory=dict)
    # JSON-like facts about how a method reached its numbers (pseudo-labels added per class,
    # their precision, chosen ensemble weights), recorded as the record's "details".
    details: Dict[str, object] = field(default_factory=dict)

    @property
    def use_bf16(self) -> bool:
        return self.amp and self.device.type == "cuda"

    @property
    def show_progress(self) -> bool:
        return self.progress and distributed.is_main()

    @property
    def precision(self) -> str:
        return "bf16" if self.use_bf16 else "fp32"

    def autocast(self):
        if self.use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def timer(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start

    def log(self, message: str):
        if distributed.is_main():
            tqdm.write(message, file=sys.stderr)

    def report(self, label: str, logits, split):
        self.reported[label] = (logits, split)

    def shared_work_dir(self, name: str) -> Path:
        """A work folder beside this run's, shared by every run that asks for the same `name`: a
        name that encodes everything a stage depends on lets a finished stage (a fine-tuned
        model) serve every run that differs only in what comes after it."""
        return Path(self.work_dir).parent / name

    def trainer(self, train_cfg: dict, name: str = "train", **options):
        from ltbench.engine.trainer import Trainer

        return Trainer(self, train_cfg, name, **options)
