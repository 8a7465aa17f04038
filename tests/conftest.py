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


# The tiers (README, "Tests"; markers in pyproject.toml). A test that takes one of these fixtures
# (or a fixture that does) runs ltbench's command line and is marked e2e here; a test that starts
# `python -m ltbench` itself says so with @pytest.mark.e2e. slow and browser are marked in the files.
E2E_FIXTURES = ("run_cli", "quickstart_results")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in E2E_FIXTURES):
            item.add_marker(pytest.mark.e2e)


# Tests never wait on the network. Set when this file loads, before any test module is imported:
# huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and a test module that
# imports open_clip at its top imports it during collection, before any fixture runs (the hub then
# tried the network for 45 s in test_unfetchable_weights_suggest_none_or_a_checkpoint).
_SAVED_ENVIRONMENT = {key: os.environ.get(key) for key in ("LTBENCH_CACHE", "HF_HUB_OFFLINE")}
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Tests never read or fill the user's cache (and never wait on the network, above)."""
    cache = tmp_path_factory.mktemp("ltbench-cache")
    saved = _SAVED_ENVIRONMENT
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


@pytest.fixture(scope="session")
def quickstart_results(tmp_path_factory):
    """A results folder with the README quick start's digits_lt runs (tiny CLIP): zeroshot_clip and a
    short linear_probe, each with its per-sample file. Shared by the compare, plot, report, browser,
    packaging and perf tests: read it, write nothing into it but figures (plots/)."""
    from ltbench.app.cli import main

    out = tmp_path_factory.mktemp("quickstart") / "results"
    assert main(["run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--out", str(out), "--no-progress"]) == 0
    assert main(["run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", str(out), "--no-progress",
                 "--cfg-options", "train.epochs=5"]) == 0
    return out


@pytest.fixture
def register_method():
    """register(name, cls): `cls` registered in METHODS as `name` for the test, removed after."""
    from ltbench.core import registry

    added = []

    def register(name, cls):
        registry.METHODS.register_module(name=name, module=cls, force=True)
        added.append(name)
        return cls

    yield register
    for name in added:
        registry.METHODS.module_dict.pop(name, None)


@pytest.fixture
def run_cli(capsys):
    """Run `ltbench ARGS...` in-process: (exit code, stdout, stderr)."""
    from ltbench.app.cli import main

    def invoke(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def _random_pixels(label: int, index: int):
    import numpy as np

    return np.random.default_rng(label * 10 + index).integers(0, 256, (20, 24, 3), dtype=np.uint8)


@pytest.fixture
def folder_dataset():
    """make(root, per_class=3, suffix='.png', names=..., pixels=..., train_lines=None) writes a
    two-class folder_lt dataset of small images under `root` (train.txt, test.txt, names.txt;
    pixels(label, index) -> uint8 [H, W, 3]; train_lines(lines) may edit the train split file's
    lines) and returns its dataset options for build_dataset."""
    from PIL import Image

    def make(root, per_class=3, suffix=".png", names="cat\ndog\n", pixels=_random_pixels, train_lines=None):
        root = Path(root)
        (root / "names.txt").write_text(names)
        for split in ("train", "test"):
            lines = []
            for label in range(2):
                for index in range(per_class):
                    relative = f"img/{split}_{label}_{index}{suffix}"
                    (root / relative).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels(label, index)).save(root / relative)
                    lines.append(f"{relative} {label}\n")
            if split == "train" and train_lines is not None:
                lines = train_lines(lines)
            (root / f"{split}.txt").write_text("".join(lines))
        return {"name": "folder_lt", "root": str(root), "split_dir": str(root), "train_list": "train.txt",
                "test_list": "test.txt", "classnames": "names.txt"}

    return make
