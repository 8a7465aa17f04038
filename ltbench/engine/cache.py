"""A content-keyed on-disk cache of arrays (image features, text classifiers).

A key is the SHA-256 of a JSON description of everything that determines the array (weights
hash, transform, split contents, precision, ...), so a stale entry can never be returned for
changed inputs. Entries are .npy files written atomically (temp file + rename): concurrent
writers of one key each write a complete file and the last rename wins with identical content.
Arrays larger than memory (all tokens of a split) are streamed into their temp file through a
memory map (``get_or_compute_streaming``) and renamed into place the same way.

In a distributed run (torchrun) the processes agree on hit or miss, so that all of them compute
a missing entry together (a compute gathers its result into every process), and only the first
process of each machine writes it: a cache folder local to each machine fills, and the writers
of a shared folder write the same bytes.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ltbench.core import distributed
from ltbench.core.atomic import atomic_write, publish, temp_file_beside
from ltbench.core.errors import UserError


# Entries live in <root>/arrays/<first two key characters>/<key>.npy (+ .json description).
ENTRIES_FOLDER = "arrays"


def default_cache_dir() -> Path:
    return Path(os.environ.get("LTBENCH_CACHE") or Path.home() / ".cache" / "ltbench")


def cache_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


class ArrayCache:
    def __init__(self, root: Path = None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / ENTRIES_FOLDER / key[:2] / f"{key}.npy"

    def load(self, key: str) -> Optional[np.ndarray]:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):  # a truncated file from a killed writer of an old version
            return None

    def _save_description(self, key: str, description: dict):
        text = json.dumps(description, sort_keys=True, default=str, indent=1).encode()
        atomic_write(self.path(key).with_suffix(".json"), lambda handle: handle.write(text), durable=False)

    def save(self, key: str, array: np.ndarray, description: dict):
        atomic_write(self.path(key), lambda handle: np.save(handle, array), durable=False)
        self._save_description(key, description)

    def get_or_compute(self, description: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for `description`, computing and storing it on a miss."""
        key = cache_key(description)
        cached = self.load(key)
        if distributed.all_true(cached is not None):
            return cached
        array = np.ascontiguousarray(compute())
        if distributed.is_local_main():
            self.save(key, array, description)
        return array

    def get_or_compute_streaming(self, description: dict, shape: Sequence[int], dtype,
                                 fill: Callable[[np.ndarray], None]) -> np.ndarray:
        """The cached [shape] array of `dtype` for `description`, memory-mapped read-only.

        On a miss, ``fill(out)`` writes every element of ``out``, a writable memory map of a
        private temp .npy file in the cache folder: the array never has to fit in memory. The
        file is renamed into place only once ``fill`` returns, so a failure (or an interrupt)
        leaves neither an entry nor a temp file, and concurrent writers of one key each fill
        their own file (the last rename wins). An entry of another shape or dtype counts as a
        miss. In a distributed run the processes that do not write call ``fill(None)`` (they
        take part in the computing) and read the entry once it is in place.
        """
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        key = cache_key(description)
        cached = self.load(key)
        if distributed.all_true(cached is not None and cached.shape == shape and cached.dtype == dtype):
            return cached
        if not distributed.is_local_main():
            fill(None)
            distributed.barrier()  # until the writers have renamed their files into place
            return np.load(self.path(key), mmap_mode="r")
        temp = temp_file_beside(self.path(key))
        try:
            _check_free_space(temp.parent, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            out = np.lib.format.open_memmap(temp, mode="w+", dtype=dtype, shape=shape)
            try:
                fill(out)
                out.flush()
            finally:
                del out  # unmap before the rename
            publish(temp, self.path(key))
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._save_description(key, description)
        distributed.barrier()
        return np.load(self.path(key), mmap_mode="r")


def _check_free_space(folder: Path, needed: int):
    """A clear error up front: running out of disk while writing a memory map kills the process
    (SIGBUS) instead of raising."""
    free = shutil.disk_usage(folder).free
    if needed + (64 << 20) > free:
        raise UserError(f"not enough disk space for a {format_bytes(needed)} cache entry under {folder} "
                        f"({format_bytes(free)} free); free some space or point LTBENCH_CACHE at a "
                        f"larger disk")


def format_bytes(count: int) -> str:
    """'35.1 GB', '412.0 MB', '3.2 kB', '12 B' (powers of 1000)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"
