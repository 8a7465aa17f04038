"""Mini-batches of in-memory arrays (cached features, memory-mapped tokens) in sampler order.

batch_size is the batch of one optimizer step; in a distributed run each process takes its
share of every batch (core/distributed.py), so steps_per_epoch is the same in every process
and in a single-process run.

Rows of a memory-mapped token cache (``RowReader``) are read in sorted order, each distinct row
once, into a reused (on CUDA: pinned) host buffer in their stored dtype (fp16), copied to the
device without blocking and put back in batch order and cast to float32 there: the main thread
only copies fp16 rows. A batch of 256 x 197 x 768 tokens used to be gathered in sampler order,
converted to float32 by numpy into a fresh 155 MB array and copied from pageable memory: about
140-230 ms of main-thread work a step against a GPU step of about 10 ms (docs/performance.md).
The values are the same: fp16 -> fp32 is exact wherever it happens.
"""
import math

import numpy as np
import torch

from ltbench.core.distributed import shard_batches


def _epoch_order(sampler, batch_size: int, epoch: int):
    """(this process's indices for `epoch`, its batch size)."""
    sampler.set_epoch(epoch)
    sampler, batch_size = shard_batches(sampler, batch_size)
    return np.fromiter(iter(sampler), dtype=np.int64), batch_size


class TensorBatches:
    """Callable epoch -> iterator of (inputs[idx], targets[idx]); one index gather per batch."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, sampler, batch_size: int):
        self.inputs, self.targets = inputs, targets
        self.sampler, self.batch_size = sampler, int(batch_size)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __call__(self, epoch: int):
        order, batch_size = _epoch_order(self.sampler, self.batch_size, epoch)
        order = torch.from_numpy(order).to(self.inputs.device)
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            yield self.inputs[index], self.targets[index]


class RowReader:
    """reader(index) -> float32 [len(index), ...] rows `index` of a (memory-mapped) numpy array, on
    `device`, in `index` order (repeats allowed).

    The distinct rows are read in ascending order (a memory map's pages in file order) into a
    host buffer of the array's own dtype: on the CPU one buffer reused from batch to batch (a
    fresh 100 MB array costs more in page faults than the copy itself); on CUDA pinned memory
    from torch's caching host allocator, which reuses a block only once its copy is done. The
    rows go to the device as stored (fp16: half the bytes), asynchronously, and are put back in
    batch order (an index on the device) and cast to float32 there.
    """

    def __init__(self, array: np.ndarray, device=None):
        self.array = array
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._buffers = {}  # CPU only: name -> reused host array

    def _cpu_buffer(self, name: str, rows: int) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or len(buffer) < rows:
            buffer = self._buffers[name] = np.empty((rows, *self.array.shape[1:]), dtype=self.array.dtype)
        return buffer[:rows]

    def _host_rows(self, rows: np.ndarray):
        """The array's `rows` (ascending, distinct) in a host buffer: (numpy view, tensor)."""
        if self.device.type == "cpu":
            buffer = self._cpu_buffer("rows", len(rows))
            host = torch.from_numpy(buffer)
        else:
            host = torch.empty((len(rows), *self.array.shape[1:]), dtype=_torch_dtype(self.array.dtype),
                               pin_memory=self.device.type == "cuda")
            buffer = host.numpy()
        # mode="clip": take writes straight into `out` (its default mode buffers); rows are in range.
        np.take(self.array, rows, axis=0, out=buffer, mode="clip")
        return buffer, host

    def __call__(self, index) -> torch.Tensor:
        index = np.asarray(index, dtype=np.int64)
        rows, inverse = np.unique(index, return_inverse=True)
        in_order = len(rows) == len(index) and bool((rows == index).all())
        buffer, host = self._host_rows(rows)
        if self.device.type == "cpu":
            if not in_order:  # batch order in a second reused buffer; the float32 batch is new
                buffer = np.take(buffer, inverse.reshape(-1), axis=0, out=self._cpu_buffer("ordered", len(index)),
                                 mode="clip")
            return torch.from_numpy(buffer).to(torch.float32, copy=True)  # never a view of the buffer
        on_device = host.to(self.device, non_blocking=True)
        if not in_order:
            order = torch.from_numpy(inverse.reshape(-1))
            if self.device.type == "cuda":
                order = order.pin_memory()
            on_device = on_device.index_select(0, order.to(self.device, non_blocking=True))
        return on_device.float()


def _torch_dtype(dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


class ArrayRowBatches:
    """Callable epoch -> iterator of (float32 rows of a numpy array on `device`, labels) in
    sampler order: cached tokens that may not fit in memory are read from their memory map a
    batch at a time (RowReader: sorted reads, fp16 to the device, cast there)."""

    def __init__(self, array: np.ndarray, labels: np.ndarray, sampler, batch_size: int, device=None):
        self.array, self.labels = array, labels
        self.sampler, self.batch_size = sampler, int(batch_size)
        self.reader = RowReader(array, device)

    def __call__(self, epoch: int):
        order, batch_size = _epoch_order(self.sampler, self.batch_size, epoch)
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            yield self.reader(index), torch.from_numpy(self.labels[index])


class EpochProgress:
    """A batches callable that also knows the fraction of training done at its current epoch, for
    losses on a schedule (LDAM-DRW): pass ``progress.value`` to the loss."""

    def __init__(self, batches, epochs: int):
        self.batches, self.epochs, self.value = batches, max(1, int(epochs)), 0.0

    def __call__(self, epoch: int):
        self.value = epoch / self.epochs
        return self.batches(epoch)
