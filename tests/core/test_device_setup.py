"""distributed.setup makes the run's CUDA device current, in one process too (mocked torch.cuda)."""
import pytest
import torch

from ltbench.core import distributed


@pytest.fixture
def four_gpus(monkeypatch):
    calls = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(torch.device(device)))
    return calls


def test_single_process_run_on_cuda_n_sets_that_device(four_gpus):
    assert distributed.setup(torch.device("cuda", 2)) == torch.device("cuda", 2)
    assert four_gpus == [torch.device("cuda", 2)]


def test_plain_cuda_names_the_current_device(four_gpus):
    assert distributed.setup(torch.device("cuda")) == torch.device("cuda", 0)
    assert four_gpus == [torch.device("cuda", 0)]


def test_cpu_run_touches_no_gpu(four_gpus):
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert four_gpus == []


@pytest.fixture
def joined(monkeypatch, four_gpus):
    """setup under torchrun (process 1 of 2 on this machine) with init_process_group recorded."""
    import torch.distributed as dist

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **options: calls.append((backend, options)))
    monkeypatch.setattr(distributed, "is_active", lambda: False)
    monkeypatch.setattr(distributed.atexit, "register", lambda function: None)
    return calls


def test_nccl_group_gets_a_long_timeout_and_its_device(joined):
    import datetime

    assert distributed.setup(torch.device("cuda"), timeout_minutes=45) == torch.device("cuda", 1)
    (backend, options), = joined
    assert backend == "nccl" and options["timeout"] == datetime.timedelta(minutes=45)
    assert options["device_id"] == torch.device("cuda", 1)


def test_gloo_group_gets_the_default_timeout(joined):
    import datetime

    distributed.setup(torch.device("cpu"))
    (backend, options), = joined
    assert backend == "gloo" and "device_id" not in options
    assert options["timeout"] == datetime.timedelta(minutes=distributed.DEFAULT_TIMEOUT_MINUTES) >= \
        datetime.timedelta(minutes=30)


@pytest.mark.parametrize("value", ["0", "-1", "long", "null", "true"])
def test_a_bad_timeout_is_refused_before_any_work(value):
    from ltbench.config import RunRequest, parse_cfg_options, resolve
    from ltbench.core.errors import UserError

    options = parse_cfg_options([f"runtime.collective_timeout_minutes={value}"])
    with pytest.raises(UserError, match="runtime.collective_timeout_minutes=.*expected a finite number > 0"):
        resolve(RunRequest("zeroshot_clip", "digits_lt", options=options))
