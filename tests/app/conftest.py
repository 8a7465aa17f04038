"""Fixtures of the command-line tests."""
import hashlib
from pathlib import Path

import pytest


@pytest.fixture
def checksum():
    """checksum(folder): one digest of every file's relative path and bytes under `folder`, to
    show that a failed command left results exactly as they were."""
    def digest_of(folder: Path) -> str:
        digest = hashlib.sha256()
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()

    return digest_of


@pytest.fixture(scope="session")
def digits_reported(tmp_path_factory):
    """A published-numbers file with one digits_lt entry (linear_probe, tiny), for the Reported column."""
    path = tmp_path_factory.mktemp("reported") / "reported.yaml"
    path.write_text("sources:\n  T: 'A test source.'\nentries:\n"
                    "  - {dataset: digits_lt, method: linear_probe, backbone: tiny, paper_backbone: tiny, overall: 42.5, "
                    "split: test, source: T}\n")
    return path
