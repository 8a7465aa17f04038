import os
from pathlib import Path

import pytest

SHARED_SPLITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "splits"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Tests never read or fill the user's cache, and never wait on the network."""
    cache = tmp_path_factory.mktemp("ltbench-cache")
    saved = {key: os.environ.get(key) for key in ("LTBENCH_CACHE", "HF_HUB_OFFLINE")}
    os.environ["LTBENCH_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def run_cli(capsys):
    """Run `ltbench ARGS...` in-process: (exit code, stdout, stderr)."""
    from ltbench.app.cli import main

    def invoke(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
