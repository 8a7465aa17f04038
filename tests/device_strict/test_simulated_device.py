"""The simulated device itself (conftest.py) applies CUDA's device rules and nothing else."""
import io

import pytest
import torch

pytestmark = pytest.mark.device_strict


def test_a_cpu_tensor_in_a_device_op_fails_as_on_cuda(simulated_device):
    device = simulated_device.device
    x = torch.ones(3, 4, device=device)
    for mixed in (lambda: x @ torch.ones(4, 2), lambda: torch.cat([x, torch.ones(1, 4)]),
                  lambda: torch.ones(3, 4) + x, lambda: torch.index_select(x, 0, torch.tensor([0]))):
        with pytest.raises(RuntimeError, match="same device"):
            mixed()
    with pytest.raises(TypeError):  # .numpy() of a device tensor needs .cpu() first
        x.numpy()
    with pytest.raises(RuntimeError, match="generator"):
        torch.randn(3, device=device, generator=torch.Generator().manual_seed(0))


def test_what_cuda_allows_runs_on_real_values(simulated_device):
    device = simulated_device.device
    x = torch.arange(12.0).reshape(3, 4).to(device)
    assert simulated_device.is_on_device(x + torch.tensor(1.0))  # a 0-dim host scalar
    picked = x[torch.tensor([2, 0])]  # host indices
    x[torch.tensor([1])] = 0.0
    assert picked.cpu().tolist() == [[8.0, 9.0, 10.0, 11.0], [0.0, 1.0, 2.0, 3.0]]
    assert x.sum().item() == 66.0 - 22.0 and x.tolist()[1] == [0.0] * 4
    host = torch.zeros(3, 4)
    host.copy_(x)  # copies between devices
    assert torch.equal(host, x.cpu()) and not simulated_device.is_on_device(host)


def test_modules_train_and_checkpoints_load_where_asked(simulated_device):
    device = simulated_device.device
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(5, 4).to(device)), torch.tensor([0, 1, 0, 1, 1]).to(device))
    loss.backward()
    optimizer.step()
    assert simulated_device.is_on_device(model.weight) and simulated_device.is_on_device(model.weight.grad)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    for where, on_device in ((None, True), (device, True), ("cpu", False)):
        buffer.seek(0)
        state = torch.load(buffer, map_location=where, weights_only=True)
        assert simulated_device.is_on_device(state["weight"]) == on_device
        assert torch.equal(state["weight"].cpu(), model.weight.detach().cpu())
    fresh = torch.nn.Linear(4, 2).to(device)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.weight.cpu(), model.weight.detach().cpu())
