"""Fixtures for every test. The tests mirror the ltbench packages (tests/core, tests/data, ...);
they never import each other: shared helpers are fixtures here or in a folder's conftest.py."""
import gzip
import os
import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# The real split files of ImageNet-LT, Places-LT and iNaturalist 2018 that tests read (no images),
# kept gzip-compressed in the repository: tests/data/splits/<Dataset>/<file>.gz.
SPLITS_ARCHIVE = TESTS / "data" / "splits"

# Processes a test spawns (torch.multiprocessing, start method spawn) take this process's
# sys.path and unpickle their worker by the module name pytest's importlib mode gave it
# (tests.engine.test_distributed): the checkout's root must be on the path, however pytest was
# started (`python -m pytest` adds it, the `pytest` script does not). Appended, so it never
# shadows an installed ltbench.
if str(TESTS.parent) not in sys.path:
    sys.path.append(str(TESTS.parent))


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


@pytest.fixture(scope="session")
def repo_root():
    """The checkout's root folder (README.md, benchmarks/, methods/)."""
    return TESTS.parent


@pytest.fixture(scope="session")
def real_splits(tmp_path_factory):
    """A folder of the real split files, decompressed once per session: <folder>/Places_LT/
    (train, val, test, classnames), ImageNet_LT/ (val, test, classnames), iNaturalist18/ (val,
    categories.json)."""
    folder = tmp_path_factory.mktemp("splits")
    archives = sorted(SPLITS_ARCHIVE.glob("*/*.gz"))
    assert archives, f"no split files under {SPLITS_ARCHIVE}"
    for archive in archives:
        target = folder / archive.parent.name / archive.stem
        target.parent.mkdir(exist_ok=True)
        with gzip.open(archive, "rb") as source, open(target, "wb") as destination:
            shutil.copyfileobj(source, destination)
    return folder


@pytest.fixture
def run_cli(capsys):
    """Run `ltbench ARGS...` in-process: (exit code, stdout, stderr)."""
    from ltbench.app.cli import main

    def invoke(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
