"""The device-strict mode: ltbench's device-sensitive code on a simulated accelerator, on the CPU.

On a CPU-only machine every tensor is on the same device, so a CPU tensor mixed into a CUDA
computation (a text classifier left on the host, a label tensor never moved) passes every test
and crashes on the first GPU. Here tensors "on the device" are real CPU tensors wrapped in
``SimulatedTensor``, whose device reads ``meta``; a dispatch mode (``SimulatedDevice``) runs every
op on the wrapped values and applies CUDA's device rules first, so that:

- an op that mixes a device tensor with a CPU tensor of one or more dimensions raises the error
  CUDA raises ("Expected all tensors to be on the same device"); a 0-dim CPU tensor (a scalar)
  may join a device op, as on CUDA, and so may CPU indices in ``x[index]`` / ``x[index] = v``;
- ``.to(device)``, ``.cpu()``, ``copy_`` and factory functions with ``device=`` move values
  across, as on CUDA; ``.numpy()`` of a device tensor fails as on CUDA (it needs ``.cpu()``);
- a CPU ``torch.Generator`` drawing device values fails, as CUDA refuses it.

The values are real, so a whole method runs end to end (fit, predict, its metrics): the test
fails on a device mix and on nothing else. Why ``meta`` and not ``cuda``: autograd asks the CUDA
runtime for a stream for every tensor labelled ``cuda`` that requires grad, which a machine
without a GPU cannot answer; the meta device has a no-op stream, and ltbench has no code that
branches on it. What this does not cover: CUDA-only branches (``device.type == "cuda"``: bf16
autocast, pinned memory, channels_last, NCCL) run their CPU side; performance and numerics.

Checkpoints: ``torch.save`` writes a device tensor's values (as a CPU tensor), and ``torch.load``
with ``map_location`` None or the simulated device gives device tensors back (a checkpoint
written on a GPU loads onto the GPU without a map_location), with "cpu" host tensors.
"""
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

SIMULATED = torch.device("meta")
aten = torch.ops.aten

# Ops CUDA runs with arguments on two devices: copies between devices, and advanced indexing,
# whose index tensors may stay on the host.
_COPIES = {aten._to_copy.default, aten.copy_.default, aten._foreach_copy_.default, aten.lift_fresh.default,
           aten.lift_fresh_copy.default}
_INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default,
             aten._unsafe_index.Tensor, aten._unsafe_index_put.default}


class DeviceMismatch(RuntimeError):
    """What CUDA raises for a CPU tensor in a device op."""


class SimulatedTensor(torch.Tensor):
    """A tensor on the simulated device: its values are ``elem``, a CPU tensor."""

    elem: torch.Tensor
    __slots__ = ["elem"]
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=SIMULATED, requires_grad=elem.requires_grad)
        wrapper.elem = elem
        return wrapper

    def __repr__(self):
        return f"SimulatedTensor({self.elem!r})"

    # torch's Python code skips work on meta tensors, which hold no values (load_state_dict
    # would leave a simulated parameter as it was): these hold values.
    is_meta = property(lambda self: False)

    def tolist(self):  # CUDA tensors give their values (a host sync)
        return self.cpu().tolist()

    def numpy(self, *args, **kwargs):  # as CUDA refuses it
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        "to host memory first.")

    def __array__(self, *args, **kwargs):  # np.asarray(tensor)
        self.numpy()

    def __reduce_ex__(self, protocol):  # torch.save: the values, as a host tensor (see torch_load)
        return self.detach().cpu().__reduce_ex__(protocol)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on a simulated device tensor outside the simulated_device fixture")


def _describe(tensor) -> str:
    return "cuda" if isinstance(tensor, SimulatedTensor) else f"cpu {tuple(tensor.shape)}"


def _check_devices(func, args, kwargs, tensors):
    simulated = [t for t in tensors if isinstance(t, SimulatedTensor)]
    if not simulated or func in _COPIES:
        return
    if func in _INDEXING:
        # x[index] with x on the device: the indices may be on the host; the values may not.
        if not isinstance(args[0], SimulatedTensor):
            raise DeviceMismatch(f"{func}: indices on the device for a CPU tensor")
        tensors = [args[0]] + [t for t in tree_flatten((args[2:], kwargs))[0] if isinstance(t, torch.Tensor)]
    host = [t for t in tensors if not isinstance(t, SimulatedTensor) and t.dim() > 0]
    if host:
        raise DeviceMismatch(f"Expected all tensors to be on the same device, but found at least two devices, "
                             f"cuda:0 and cpu! ({func}: {', '.join(_describe(t) for t in tensors)})")
    # A device tensor that is a CPU op's only device input (a 0-dim one with host tensors) is
    # caught above; what is left runs on the device.


class SimulatedDevice(TorchDispatchMode):
    """The dispatch mode: runs every op on plain CPU tensors and wraps what lands on the device."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = tree_flatten((args, kwargs))[0]
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        _check_devices(func, args, kwargs, tensors)
        device = kwargs.get("device")
        if device is not None:
            on_device = torch.device(device).type == SIMULATED.type
            kwargs = {**kwargs, "device": torch.device("cpu")}
        elif func in _COPIES and func is not aten._to_copy.default:
            on_device = False  # copy_ writes into its first argument, handled below
        else:
            on_device = any(isinstance(t, SimulatedTensor) for t in tensors)
        if on_device and any(isinstance(item, torch.Generator) and item.device.type == "cpu" for item in flat):
            raise DeviceMismatch(f"Expected a 'cuda' device type for generator but found 'cpu' ({func})")

        def unwrap(item):
            return item.elem if isinstance(item, SimulatedTensor) else item

        out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))
        # In-place and out= ops return the very tensor they wrote into.
        schema = func._schema
        if schema.returns and all(r.alias_info is not None and r.alias_info.is_write for r in schema.returns):
            written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
            if len(schema.returns) == 1 and len(written) == 1:
                name = written[0].name
                position = [a.name for a in schema.arguments].index(name)
                return kwargs.get(name, args[position] if position < len(args) else None)
        return tree_map(lambda item: SimulatedTensor(item) if on_device and isinstance(item, torch.Tensor)
                        and not isinstance(item, SimulatedTensor) else item, out)


def _to_simulated(value):
    return tree_map(lambda item: SimulatedTensor(item) if isinstance(item, torch.Tensor)
                    and not isinstance(item, SimulatedTensor) else item, value)


def _host_then_device(create, method=False):
    def created(*args, device=None, **kwargs):
        if method and device is None:
            device = args[0].device  # tensor.new_tensor(data): on the tensor's device
        if device is not None and torch.device(device).type == SIMULATED.type:
            return create(*args, device="cpu", **kwargs).to(SIMULATED)
        return create(*args, device=device, **kwargs)

    return created


class Simulation:
    """What the fixture gives a test: the device to pass as ``ctx.device`` and helpers."""

    device = SIMULATED

    @staticmethod
    def is_on_device(tensor) -> bool:
        return isinstance(tensor, SimulatedTensor)

    @staticmethod
    def tensor(value) -> torch.Tensor:
        """A device tensor of `value` (a CPU tensor or anything torch.as_tensor takes)."""
        return SimulatedTensor(torch.as_tensor(value))


@pytest.fixture
def simulated_device(monkeypatch):
    """Run the test inside the simulated device (see the module's docstring); yields a Simulation."""
    load = torch.load

    def torch_load(f, map_location=None, *args, **kwargs):
        loaded = load(f, *args, map_location="cpu", **kwargs)
        target = map_location if map_location is not None else SIMULATED
        if isinstance(target, (str, torch.device)) and torch.device(target).type == SIMULATED.type:
            return _to_simulated(loaded)
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu":
            return loaded
        raise NotImplementedError(f"the simulated device: torch.load with map_location={map_location!r}")

    monkeypatch.setattr(torch, "load", torch_load)
    # torch.tensor(data, device=...) and friends copy host data to the device below the dispatch
    # mode (a real, empty meta tensor): built on the host here, then moved through the mode.
    for name in ("tensor", "as_tensor", "asarray"):
        monkeypatch.setattr(torch, name, _host_then_device(getattr(torch, name)))
    monkeypatch.setattr(torch.Tensor, "new_tensor", _host_then_device(torch.Tensor.new_tensor, method=True))
    with SimulatedDevice():
        yield Simulation()


@pytest.fixture
def strict_run(simulated_device, monkeypatch, run_cli):
    """strict_run(method, out, *options, process_group=False): `ltbench run --method METHOD
    --dataset digits_lt` in this process with the run's device the simulated one; returns the
    record (a dict). Its cache is out/cache, not the session's: every feature, token array and
    text classifier is computed on the device once, not read from a non-strict test's entry.

    process_group: inside a one-process gloo group, so that the distributed code runs too (the
    gathers of features, tokens and the contrastive loss's batch, the agreement on cache hits,
    the logged loss's mean) on simulated device tensors. DDP itself is left out: its C++ reducer
    cannot hold simulated tensors (the gradients it averages are on the device on a GPU anyway).
    """
    import json

    import torch.distributed as dist

    from ltbench.app import runner
    from ltbench.core import distributed

    monkeypatch.setattr(runner, "resolve_device", lambda name="auto": SIMULATED)

    def run(method, out, *options, process_group=False):
        monkeypatch.setenv("LTBENCH_CACHE", str(Path(out) / "cache"))
        if process_group:
            monkeypatch.setattr(distributed, "wrap_for_training", lambda model, device, **options: model)
            dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        try:
            code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                           "--no-progress", *(["--cfg-options", *options] if options else []))
        finally:
            if process_group:
                dist.destroy_process_group()
        assert code == 0, stderr
        return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())

    return run
