"""Runs across processes started by torchrun: process group, sharding, gathering, DDP.

A run is distributed when torchrun's environment says WORLD_SIZE > 1. Every process then runs
the whole pipeline with the same config and seed, and the helpers below split the work:

- training: each process takes the positions rank, rank + world_size, ... of the same global
  (seed, epoch) order with batch_size / world_size images a step (``shard_batches``), so the
  processes' step-k batches together are exactly the single-process step-k batch; DDP averages
  the gradients, which for a mean loss over equal-size local batches is the gradient of the
  global batch. batch_size stays the global batch, whatever the number of processes;
- evaluation: each process encodes a contiguous block of a split (``shard_rows``) and the
  blocks are all-gathered back into split order (``gather_rows``): every process ends up with
  the same array, so cache keys, predictions and records agree;
- files: records, checkpoints and logs come from rank 0 only (``is_main``); cache entries from
  the first process of each machine (``is_local_main``), so a cache folder local to each node
  fills too, and writers of a shared folder write identical bytes.

In a single process nothing is initialised and every helper leaves things as they are.
"""
import atexit
import contextlib
import datetime
import inspect
import math
import os
from typing import List, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ltbench.core.errors import UserError


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


# How long a collective may wait for the slowest process before the job fails (runtime.
# collective_timeout_minutes, defaults.yaml says why 60). NCCL's own default is 10 minutes
# (gloo's 30), shorter than what the other processes legitimately wait for at a barrier: rank 0
# preparing a dataset, the writer of a node's cache flushing a token array of 100+ GB.
DEFAULT_TIMEOUT_MINUTES = 60
# torch >= 2.3 binds a process group to a device (init_process_group's device_id).
_BINDS_DEVICE = "device_id" in inspect.signature(dist.init_process_group).parameters


def collective_timeout(minutes) -> datetime.timedelta:
    """runtime.collective_timeout_minutes (checked with the rest of the config) as a timedelta."""
    return datetime.timedelta(minutes=float(minutes))


def setup(device: torch.device, timeout_minutes=DEFAULT_TIMEOUT_MINUTES) -> torch.device:
    """This process's device; under torchrun (WORLD_SIZE > 1) joins the process group first:
    nccl with cuda:LOCAL_RANK on CUDA, gloo on the CPU, with a collective timeout of
    `timeout_minutes` and, on CUDA, the group bound to this process's GPU (``device_id``, torch
    >= 2.3: NCCL connects eagerly there, instead of guessing the device at the first
    collective). Idempotent.

    A CUDA device becomes the process's current device (torch.cuda.set_device), in one process
    too (--device cuda:N): CUDA's own defaults (the current device's RNG that seeding.py seeds,
    a tensor made with device="cuda", the device NCCL and cuDNN pick) then all mean the run's
    device, and no work lands on cuda:0 by default. The result names its index (cuda -> cuda:K).
    """
    timeout = collective_timeout(timeout_minutes)  # refused in one process too, before any work
    if launched_world_size() <= 1:
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
            torch.cuda.set_device(device)
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is not None:
            raise UserError(f"--device {device}: under torchrun each process uses cuda:LOCAL_RANK; "
                            "pass --device cuda (or cpu)")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started process {local_rank} of this machine, but it has "
                            f"{torch.cuda.device_count()} GPU(s); lower --nproc_per_node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"--device {device}: distributed runs use cuda (nccl) or cpu (gloo)")
    if not is_active():
        options = {"timeout": timeout}
        if device.type == "cuda" and _BINDS_DEVICE:
            options["device_id"] = device
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **options)
        except (ValueError, RuntimeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"could not join the torchrun process group ({reason}); launch with "
                            "torchrun, which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT") from None
        atexit.register(_teardown)
    return device


def _teardown():
    if is_active():
        dist.destroy_process_group()


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def get_rank() -> int:
    return dist.get_rank() if is_active() else 0


def is_main() -> bool:
    """The process that writes records, checkpoints and logs (rank 0)."""
    return get_rank() == 0


def is_local_main() -> bool:
    """The first process of its machine: it writes cache entries there."""
    return not is_active() or int(os.environ.get("LOCAL_RANK", "0")) == 0


def _collective_device() -> torch.device:
    """nccl moves only CUDA tensors, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier():
    if is_active():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block before the others (a download, a file the others then read)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_true(flag: bool) -> bool:
    """Whether `flag` holds in every process: the processes take one branch together."""
    if not is_active():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over the processes (a logged loss covers the global batch)."""
    if not is_active():
        return value
    total = value.detach().to(_collective_device(), torch.float32).clone()
    dist.all_reduce(total)
    return (total / get_world_size()).to(value.device)


# --- training: every sampler, sharded --------------------------------------------------------

class ShardedSampler(Sampler):
    """This process's share of any sampler's epoch order (the distributed version of every
    registered sampler): the positions rank, rank + world_size, ... of that order, padded by
    wrapping around to a multiple of world_size as torch's DistributedSampler pads. Every
    process gets the same number of items; the shards of an epoch are disjoint positions of
    one order that together cover it. The order itself still depends only on (seed, epoch)."""

    def __init__(self, sampler, rank: Optional[int] = None, world_size: Optional[int] = None):
        self.sampler = sampler
        self.world_size = get_world_size() if world_size is None else int(world_size)
        self.rank = get_rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside a world of {self.world_size}")

    def set_epoch(self, epoch: int):
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self):
        return math.ceil(len(self.sampler) / self.world_size)

    def __iter__(self):
        order = list(self.sampler)
        total = len(self) * self.world_size
        if order and total > len(order):
            order = (order * math.ceil(total / len(order)))[:total]
        return iter(order[self.rank::self.world_size])


def shard_batches(sampler, batch_size: int, rank: Optional[int] = None, world_size: Optional[int] = None):
    """(sampler, batch size) for this process's training batches: the sharded sampler and
    batch_size / world_size, so that batch_size stays the batch of one optimizer step across
    all processes. Unchanged in a single process."""
    world = get_world_size() if world_size is None else int(world_size)
    if world == 1:
        return sampler, batch_size
    if batch_size % world:
        raise UserError(f"training batch size {batch_size} does not split evenly over {world} processes: "
                        f"under torchrun the batch size is the global batch; choose a multiple of {world}")
    return ShardedSampler(sampler, rank, world), batch_size // world


# --- evaluation: blocks of a split, gathered back ----------------------------------------------

def shard_rows(count: int, rank: Optional[int] = None, world_size: Optional[int] = None) -> Optional[List[int]]:
    """The rows of a `count`-row split this process encodes: a contiguous block of
    ceil(count / world_size) rows, the last block wrapped around to the start so that every
    block has the same size (the gather needs equal shapes); None in a single process (all
    rows, in order)."""
    world = get_world_size() if world_size is None else int(world_size)
    if world == 1:
        return None
    block = math.ceil(count / world)
    first = (get_rank() if rank is None else int(rank)) * block
    return (np.arange(first, first + block) % count).tolist()


def all_gather_list(tensor: torch.Tensor) -> List[torch.Tensor]:
    """Every process's `tensor` (same shape in all), in rank order, on `tensor`'s device."""
    if not is_active():
        return [tensor]
    local = tensor.to(_collective_device()).contiguous()
    parts = [torch.empty_like(local) for _ in range(get_world_size())]
    dist.all_gather(parts, local)
    return [part.to(tensor.device) for part in parts]


def gather_batch(local: torch.Tensor) -> torch.Tensor:
    """[world_size * b, ...]: every process's `local` [b, ...] in rank order, as constants (no
    gradient): the global batch's inputs or labels, for a loss that every process computes whole
    against outputs gathered by ``gather_for_loss``. Unchanged in a single process."""
    if not is_active():
        return local
    return torch.cat(all_gather_list(local.detach()))


class _ScaledGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by `scale`."""

    @staticmethod
    def forward(ctx, tensor, scale: float):
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def gather_for_loss(local: torch.Tensor) -> torch.Tensor:
    """[world_size * b, ...]: every process's `local` [b, ...] in rank order, for a loss over the
    global batch that every process computes whole (BALLAD's contrastive loss).

    open_clip's ``gather_features`` pattern: the other processes' parts are constants, this
    process's own part is `local` itself, so the backward reaches this process's encoders
    through its own rows (the others' encoders get theirs in their processes). The gradient of
    the local part is multiplied by world_size: DDP averages the processes' gradients, and each
    holds only its own rows' share of the global loss's gradient, so the average times
    world_size is that gradient, the single-process one. Unchanged in a single process.
    """
    if not is_active():
        return local
    parts = all_gather_list(local.detach())
    parts[get_rank()] = _ScaledGradient.apply(local, float(get_world_size()))
    return torch.cat(parts)


def gather_rows(local: torch.Tensor, count: int) -> torch.Tensor:
    """The blocks of ``shard_rows`` from every process, back in split order: [count, ...]."""
    if not is_active():
        return local
    return torch.cat(all_gather_list(local))[:count]


# --- the trained module ------------------------------------------------------------------------

def with_synced_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` with its BatchNorm layers turned into SyncBatchNorm (in place, on the same
    parameters and running statistics) when distributed on CUDA: a BatchNorm that trains then
    normalises over the global batch, as in one process, instead of each GPU's slice of it (and
    its running statistics are the same in every process). Layers in eval mode (frozen statistics)
    compute as before. Unchanged in one process and on the CPU, where torch has no SyncBatchNorm
    kernel: there each process normalises over its own slice."""
    if not is_active() or get_world_size() == 1 or device.type != "cuda":
        return model
    if not any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_for_training(model: torch.nn.Module, device: torch.device, sync_batchnorm: bool = True) -> torch.nn.Module:
    """`model` in DistributedDataParallel when distributed (the module itself otherwise), its
    BatchNorm layers synchronised first unless sync_batchnorm is false (with_synced_batchnorm).

    Buffers are not broadcast before every forward (DDP's default): that would send, e.g., a
    CLIP fine-tuner's tokenised prompts every step. ``sync_buffers`` gives every process rank
    0's buffers once an epoch instead, which is what DDP's default leaves them at too.
    """
    if not is_active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        model = with_synced_batchnorm(model, device)
    # torch >= 2.15 calls the option forward_sync_buffers and warns about the old name.
    option = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters \
        else "broadcast_buffers"
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   **{option: False})


def sync_buffers(model: torch.nn.Module):
    """Rank 0's buffers (BatchNorm running statistics) in every process."""
    if not is_active():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def gradient_sync(model: torch.nn.Module, enabled: bool):
    """A context for one step's backward: without sync (accumulation steps) DDP keeps the
    gradients local and all-reduces them once, at the step that updates."""
    if enabled or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()
