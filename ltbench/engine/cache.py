"""A content-keyed on-disk cache of arrays (image features, text classifiers).

A key is the SHA-256 of a JSON description of everything that determines the array (weights
hash, transform, split contents, precision, ...), so a stale entry can never be returned for
changed inputs. Entries are .npy files written atomically (temp file + rename): concurrent
writers of one key each write a complete file and the last rename wins with identical content.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np


def default_cache_dir() -> Path:
    return Path(os.environ.get("LTBENCH_CACHE") or Path.home() / ".cache" / "ltbench")


def cache_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


class ArrayCache:
    def __init__(self, root: Path = None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / "arrays" / key[:2] / f"{key}.npy"

    def load(self, key: str) -> Optional[np.ndarray]:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):  # a truncated file from a killed writer of an old version
            return None

    def save(self, key: str, array: np.ndarray, description: dict):
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix, write in ((".npy", lambda handle: np.save(handle, array)),
                              (".json", lambda handle: handle.write(
                                  json.dumps(description, sort_keys=True, default=str, indent=1).encode()))):
            target = path.with_suffix(suffix)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}.", suffix=suffix)
            try:
                with os.fdopen(fd, "wb") as handle:
                    write(handle)
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise

    def get_or_compute(self, description: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for `description`, computing and storing it on a miss."""
        key = cache_key(description)
        cached = self.load(key)
        if cached is not None:
            return cached
        array = np.ascontiguousarray(compute())
        self.save(key, array, description)
        return array
