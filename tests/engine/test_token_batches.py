"""Batches of cached tokens (issue 22, finding 11): the rows of a memory-mapped fp16 array are
read in ascending order, each once, travel to the device in fp16 and are put back in batch
order and cast to float32 there; the batches are exactly those of the old path (gather in
sampler order, numpy float32 on the host)."""
import numpy as np
import pytest
import torch

from ltbench.data.samplers import build_sampler
from ltbench.engine.batches import ArrayRowBatches

LABELS = np.repeat(np.arange(4), [12, 6, 3, 1])  # 22 rows; class-balanced draws repeat the rare ones


class _RecordingArray(np.ndarray):
    """A token array that records the row indices every read asks for (np.take or [index])."""

    def take(self, indices, *args, **kwargs):
        self.reads.append(np.asarray(indices).tolist())
        return np.asarray(self).take(indices, *args, **kwargs)

    def __getitem__(self, item):
        if isinstance(item, np.ndarray):
            self.reads.append(item.tolist())
        return np.asarray(self)[item]


def _tokens(dtype=np.float16):
    values = np.random.default_rng(0).standard_normal((len(LABELS), 5, 8)).astype(dtype)
    array = values.view(_RecordingArray)
    array.reads = []
    return values, array


def _old_batches(values, sampler, batch_size, epoch):
    """The path before the fix: rows gathered in sampler order, float32 by numpy on the host."""
    sampler.set_epoch(epoch)
    order = np.fromiter(iter(sampler), dtype=np.int64)
    return [(torch.from_numpy(np.asarray(values[order[s: s + batch_size]], dtype=np.float32)),
             torch.from_numpy(LABELS[order[s: s + batch_size]])) for s in range(0, len(order), batch_size)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_token_batches_are_the_old_ones_and_rows_are_read_sorted_once(dtype):
    values, array = _tokens(dtype)
    sampler = build_sampler("class_balanced", LABELS, seed=3)
    batches = list(ArrayRowBatches(array, LABELS, sampler, 8)(2))  # on the CPU
    expected = _old_batches(values, build_sampler("class_balanced", LABELS, seed=3), 8, 2)
    assert len(batches) == len(expected) == 3
    for (inputs, labels), (old_inputs, old_labels) in zip(batches, expected):
        assert inputs.dtype == torch.float32 and torch.equal(inputs, old_inputs)
        assert torch.equal(labels, old_labels)
    assert any(len(set(labels.tolist())) < len(labels) for _, labels in batches)  # repeats were drawn
    assert len(array.reads) == 3
    for read in array.reads:  # each batch's distinct rows, ascending
        assert read == sorted(set(read))


def test_a_batch_is_not_a_view_of_a_reused_buffer():
    from ltbench.engine.batches import RowReader

    _, array = _tokens(np.float32)
    reader = RowReader(array)
    first = reader(np.array([3, 1]))
    kept = first.clone()
    reader(np.array([7, 9]))
    assert torch.equal(first, kept)


def test_rows_travel_to_the_device_in_fp16_and_are_cast_there(monkeypatch):
    """On a device other than the CPU ('meta' stands in for CUDA here) the host sends the stored
    fp16 rows and gets float32 rows back on that device."""
    _, array = _tokens()
    moved = []
    real_to = torch.Tensor.to

    def recording_to(tensor, *args, **kwargs):
        result = real_to(tensor, *args, **kwargs)
        if tensor.device.type == "cpu" and result.device.type == "meta":
            moved.append(tensor.dtype)
        return result

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    batches = ArrayRowBatches(array, LABELS, build_sampler("class_balanced", LABELS, seed=3), 8, device="meta")
    inputs, labels = next(iter(batches(0)))
    assert inputs.device.type == "meta" and inputs.dtype == torch.float32 and inputs.shape == (8, 5, 8)
    assert torch.float16 in moved and torch.float32 not in moved


def test_encode_split_reads_cached_rows_through_the_reader(tmp_path):
    from ltbench.engine.cache import ArrayCache
    from ltbench.engine.context import RunContext
    from ltbench.engine.features import encode_split

    values, array = _tokens()

    class Split:
        name = "train"

        def __len__(self):
            return len(LABELS)

    ctx = RunContext(device=torch.device("cpu"), seed=0, work_dir=tmp_path, cache=ArrayCache(tmp_path / "c"),
                     progress=False)
    sums = encode_split(Split(), ctx, 8, lambda tokens: tokens.sum(dim=1), inputs=array)
    assert torch.equal(sums, torch.from_numpy(values.astype(np.float32)).sum(dim=1))
    assert array.reads == [list(range(8)), list(range(8, 16)), list(range(16, 22))]
