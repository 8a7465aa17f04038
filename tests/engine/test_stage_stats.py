"""What a GPU run records per stage (issue 22): the precision it computed in, its peak device
memory (max_memory_allocated of the run's device, reset per stage, nested stages included in the
enclosing one) and its peak host memory; stage timers wait for the device before reading the
clock; the devices a run used. On the CPU, with torch.cuda's counters replaced by a fake device."""
import mmap
import warnings

import pytest
import torch

from ltbench.engine import context as context_module
from ltbench.engine import devices, stage_stats
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext

DEVICE = torch.device("cuda", 1)


class FakeCuda:
    """A CUDA device's allocator counters and its queue: synchronize() runs the queued seconds."""

    def __init__(self):
        self.allocated = self.peak = 0
        self.resets, self.clock, self.queued = 0, 0.0, 0.0

    def use(self, nbytes):
        self.allocated += nbytes
        self.peak = max(self.peak, self.allocated)
        self.allocated -= nbytes

    def max_memory_allocated(self, device=None):
        assert torch.device(device) == DEVICE, device  # the run's device, not the current one
        return self.peak

    def reset_peak_memory_stats(self, device=None):
        assert torch.device(device) == DEVICE, device
        self.resets += 1
        self.peak = self.allocated

    def synchronize(self, device=None):
        assert torch.device(device) == DEVICE, device
        self.clock += self.queued
        self.queued = 0.0

    def perf_counter(self):
        return self.clock


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    for name in ("max_memory_allocated", "reset_peak_memory_stats", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(context_module.time, "perf_counter", fake.perf_counter)
    return fake


def _ctx(tmp_path, device=DEVICE):
    return RunContext(device=device, seed=0, work_dir=tmp_path / "work", cache=ArrayCache(tmp_path / "cache"),
                      amp=True, progress=False)


def test_each_stage_records_its_own_device_peak_and_precision(tmp_path, fake_cuda):
    ctx = _ctx(tmp_path)
    fake_cuda.allocated = 100  # the model's weights, there before the stages
    with ctx.timer("fit"):
        fake_cuda.use(50)
        with ctx.timer("phase_a"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # autocast("cuda") on a machine without CUDA
            with ctx.autocast():
                fake_cuda.use(1000)
        with ctx.timer("phase_b"):
            fake_cuda.use(200)
    with ctx.timer("predict"):
        fake_cuda.use(10)
    stages = ctx.outputs.stages
    assert {name: (stage["precision"], stage["peak_device_bytes"]) for name, stage in stages.items()} == {
        "phase_a": ("bf16", 1100), "phase_b": ("fp32", 300), "fit": ("bf16", 1100), "predict": ("fp32", 110)}
    assert fake_cuda.resets == 4 and all(stage["peak_host_bytes"] > 0 for stage in stages.values())


def test_a_stage_timer_waits_for_the_device_before_reading_the_clock(tmp_path, fake_cuda):
    ctx = _ctx(tmp_path)
    with ctx.timer("train"):
        fake_cuda.queued = 7.0  # kernels launched, still running when the block returns
    assert ctx.outputs.timings["train"] == 7.0


def test_a_stage_timed_twice_keeps_the_larger_peak(tmp_path, fake_cuda):
    ctx = _ctx(tmp_path)
    for nbytes in (500, 20):
        with ctx.timer("member"):
            fake_cuda.use(nbytes)
    assert ctx.outputs.stages["member"]["peak_device_bytes"] == 500


def test_host_peak_is_reset_per_stage(tmp_path):
    ctx = _ctx(tmp_path, torch.device("cpu"))
    with ctx.timer("big"):
        # 48 MiB of fresh pages, written (an array could reuse memory the allocator already holds)
        block = mmap.mmap(-1, 48 << 20)
        block.write(b"\1" * (48 << 20))
        block.close()
    with ctx.timer("small"):
        pass
    stages = ctx.outputs.stages
    assert stages["big"]["peak_device_bytes"] is None and stages["big"]["precision"] == "fp32"
    assert stages["big"]["peak_host_bytes"] - stages["small"]["peak_host_bytes"] > 40 << 20


def test_devices_name_the_gpu_its_count_driver_cuda_and_cudnn(monkeypatch):
    class Properties:
        name, total_memory, major, minor = "NVIDIA H100 80GB HBM3", 85 << 30, 9, 0

    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: asked.append(index) or Properties)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(devices, "nvidia_driver_version", lambda: "550.54.15")
    facts = devices.device_facts(torch.device("cuda", 3))
    assert asked == [3]
    assert facts == {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 1, "visible": 8,
                     "memory_bytes": 85 << 30, "capability": "9.0", "driver": "550.54.15", "cuda": "12.4",
                     "cudnn": 90100, "processes": 1}
    cpu = devices.device_facts(torch.device("cpu"))
    assert cpu["type"] == "cpu" and cpu["name"] and cpu["threads"] == torch.get_num_threads()


def test_no_cuda_counter_is_touched_before_cuda_starts(tmp_path, monkeypatch):
    """Reading or resetting the counters would create a CUDA context before the run's own."""
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    for name in ("max_memory_allocated", "reset_peak_memory_stats", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, lambda *args, **kwargs: pytest.fail("CUDA touched"))
    ctx = _ctx(tmp_path)
    with ctx.timer("data"):
        pass
    assert ctx.outputs.stages["data"]["peak_device_bytes"] == 0 and not stage_stats._open
