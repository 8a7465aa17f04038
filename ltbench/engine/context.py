"""RunContext: the services a method gets from the harness (device, seed, cache, trainer, timers)."""
import contextlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Optional, Set

import torch
from tqdm.auto import tqdm

from ltbench.core import distributed
from ltbench.core.errors import UserError
from ltbench.engine import stage_stats
from ltbench.engine.cache import ArrayCache
from ltbench.engine.cost import CostMeter

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of --device / runtime.device; a name torch does not know, or a CUDA device
    this machine does not have, is a one-line UserError (before any work)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"--device {name}: not a device; use {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: ltbench runs on {DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}, but no GPU is visible"
            raise UserError(f"--device {name}: CUDA is not available (torch {torch.__version__} built {built}); "
                            "use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                            f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        text = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    else:
        text = str(device)
    processes = distributed.get_world_size()
    return f"{text}, {processes} processes (DDP)" if processes > 1 else text


@dataclass
class RunOutputs:
    """What a run produces besides its logits, written by the method and read by the runner."""

    timings: Dict[str, float] = field(default_factory=dict)
    # label -> (logits, split): evaluations a method reports besides its final one, e.g. the
    # model after phase A of a two-phase method; the runner turns them into metrics.
    reported: Dict[str, tuple] = field(default_factory=dict)
    # name -> path of files a run leaves for later runs (e.g. a phase-A checkpoint), recorded.
    artifacts: Dict[str, str] = field(default_factory=dict)
    # JSON-like facts about how a method reached its numbers (pseudo-labels added per class,
    # their precision, chosen ensemble weights), recorded as the record's "details".
    details: Dict[str, object] = field(default_factory=dict)
    # phase -> {precision, peak_device_bytes, peak_host_bytes} of each timed stage (stage_stats).
    stages: Dict[str, dict] = field(default_factory=dict)
    # What the run cost (engine/cost.py): one meter for the run and all its parts.
    cost: CostMeter = field(default_factory=CostMeter)


@dataclass(frozen=True)
class RunContext:
    """The run's inputs and services (frozen: a method cannot change them for the rest of the
    run) and its outputs, kept apart in ``outputs``."""

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
    jpeg_draft: bool = False  # config jpeg_draft: file images decode in Pillow's JPEG draft mode
    gpu_jpeg: bool = False  # config gpu_jpeg: file JPEGs decode a batch at a time on the GPU
    deterministic: bool = False  # config deterministic: deterministic algorithms (core/determinism.py)
    # Called with (trainer name, epoch, val top-1) after an epoch whose hooks measured val
    # accuracy (a tuning trial's pruner, app/tune.py); None: nobody asks. It may raise to stop the run.
    val_reporter: Optional[Callable[[str, int, float], None]] = field(default=None, compare=False)
    outputs: RunOutputs = field(default_factory=RunOutputs)
    # What the run's numbers depend on besides its settings: split fingerprints (their images)
    # and the method's code. Epoch checkpoints store it; --resume refuses one made for another.
    data_identity: Optional[dict] = None
    # The warnings already shown (warn_once), shared with the contexts of the run's parts.
    warned: Set[str] = field(default_factory=set, repr=False, compare=False)
    # The part of a run this context serves (for_part: an ensemble member), "" for the run itself.
    part: str = ""

    def for_part(self, name: str) -> "RunContext":
        """A context for a part of this run (an ensemble member): the same inputs, its own work
        folder beside this run's, and outputs of its own (but the run's cost meter: its cost is the
        run's)."""
        return replace(self, work_dir=self.work_dir.parent / f"{self.work_dir.name}__{name}",
                       outputs=RunOutputs(cost=self.outputs.cost), part=f"{self.part}{name}.")

    @property
    def use_bf16(self) -> bool:
        return self.amp and self.device.type == "cuda"

    @property
    def show_progress(self) -> bool:
        return self.progress and distributed.is_main()

    @property
    def precision(self) -> str:
        return "bf16" if self.use_bf16 else "fp32"

    def image_transform(self, spec):
        """The eval transform `spec` as this run decodes it (jpeg_draft, gpu_jpeg from the config); its
        fingerprint says so, so cached features of the two decodings never mix."""
        if self.jpeg_draft and not getattr(spec, "jpeg_draft", True):
            spec = replace(spec, jpeg_draft=True)
        if self.gpu_jpeg and not getattr(spec, "gpu_jpeg", True):
            spec = replace(spec, gpu_jpeg=True)
        return spec

    def autocast(self):
        if self.use_bf16:
            stage_stats.note_bf16()  # the record's per-stage precision says what ran, not what was asked
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def timer(self, phase: str):
        """Time a stage (seconds in outputs.timings) and record its precision and peak memory
        (outputs.stages). On CUDA the clock is read after the device's queued work is done."""
        stage = stage_stats.enter(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            stage_stats.synchronize(self.device)
            timings = self.outputs.timings
            timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
            stage_stats.leave(stage, phase, self.outputs.stages)

    def log(self, message: str):
        if distributed.is_main():
            tqdm.write(message, file=sys.stderr)

    def warn_once(self, message: str, key: Optional[str] = None) -> bool:
        """Log ``message`` unless this run (its parts included) has already shown the warning of
        ``key`` (default: the message itself); returns whether it was shown."""
        key = message if key is None else key
        if key in self.warned:
            return False
        self.warned.add(key)
        self.log(message)
        return True

    def report(self, label: str, logits, split):
        self.outputs.reported[label] = (logits, split)

    def shared_work_dir(self, name: str) -> Path:
        """A work folder beside this run's, shared by every run that asks for the same `name`: a
        name that encodes everything a stage depends on lets a finished stage (a fine-tuned
        model) serve every run that differs only in what comes after it."""
        return Path(self.work_dir).parent / name

    def trainer(self, train_cfg: dict, name: str = "train", **options):
        from ltbench.engine.trainer import Trainer

        return Trainer(self, train_cfg, name, **options)
