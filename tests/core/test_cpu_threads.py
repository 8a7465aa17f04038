"""runtime.cpu_threads (issue 22, finding 14): torchrun's OMP_NUM_THREADS=1 would leave a process
one core; null gives each process its share of the cores it may use."""
import pytest
import torch

from ltbench.core import cpus
from ltbench.core.errors import UserError


@pytest.fixture
def sixteen_cores(monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(16)))
    for name in ("LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_under_torchrun_each_process_gets_its_share_of_the_cores(sixteen_cores):
    sixteen_cores.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpus.cpu_threads(None) == 4
    sixteen_cores.setenv("LOCAL_WORLD_SIZE", "32")
    assert cpus.cpu_threads(None) == 1  # at least one
    sixteen_cores.setenv("LOCAL_WORLD_SIZE", "1")
    sixteen_cores.setenv("TORCHELASTIC_RUN_ID", "x")  # torchrun with one process: still its 1 thread
    assert cpus.cpu_threads(None) == 16


def test_a_plain_process_keeps_torchs_default_and_a_number_wins(sixteen_cores):
    assert cpus.cpu_threads(None) is None
    sixteen_cores.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpus.cpu_threads(3) == 3


def test_set_cpu_threads_applies_it(sixteen_cores):
    before = torch.get_num_threads()
    try:
        assert cpus.set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "4"])
def test_a_bad_value_is_one_line(value):
    with pytest.raises(UserError, match="runtime.cpu_threads="):
        cpus.cpu_threads(value)
