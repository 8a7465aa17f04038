"""Fixtures of the method tests."""
import pytest


@pytest.fixture
def interrupt_after_saves(monkeypatch):
    """interrupt_after_saves(n): the trainer's n-th epoch checkpoint is followed by a
    KeyboardInterrupt (Ctrl-C after epoch n). Returns a function that lets the trainer run on."""
    from ltbench.engine import trainer

    save = trainer.save_atomic

    def arm(n: int):
        saves = {"n": 0}

        def save_then_stop(state, path):
            save(state, path)
            saves["n"] += 1
            if saves["n"] == n:
                raise KeyboardInterrupt

        monkeypatch.setattr(trainer, "save_atomic", save_then_stop)
        return lambda: monkeypatch.setattr(trainer, "save_atomic", save)

    return arm
