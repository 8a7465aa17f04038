"""Fixtures of the engine tests: two CPU processes (gloo) that run a worker as torchrun would."""
import socket
import time

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def spawn_two():
    """spawn(worker, *args): run worker(rank, 2, port, *args) in two spawned processes and wait;
    a process that fails fails the test, and two that hang are killed after `timeout` s."""

    def spawn(worker, *args, timeout=300):
        context = torch.multiprocessing.start_processes(worker, args=(2, _free_port(), *args), nprocs=2,
                                                        join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        while not context.join(timeout=2):  # raises if a process failed
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail("the two processes did not finish: a collective that only one of them entered?")

    return spawn
