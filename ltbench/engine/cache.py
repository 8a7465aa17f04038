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

Integrity: an entry's .json holds, besides the description its key was made from, an
``integrity`` record (shape, dtype, byte count and BLAKE2b digest of the array's data). An
entry is verified the first time a process reads it (the digest over its bytes, streamed, and
that its floats are finite); a bad one (garbage, NaN / inf, 0 bytes, truncated, another shape,
no integrity record) is reported in one line on stderr and recomputed. An array with NaN / inf
is never cached: computing one is an error. `ltbench cache verify` checks every entry.
"""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ltbench.core import distributed
from ltbench.core.atomic import atomic_write, publish, temp_file_beside
from ltbench.core.errors import UserError


# Entries live in <root>/arrays/<first two key characters>/<key>.npy (+ .json description).
ENTRIES_FOLDER = "arrays"
INTEGRITY_KEY = "integrity"
# Rows hashed (and checked for finiteness) at a time: memory-mapped arrays never load whole.
_CHUNK_BYTES = 64 << 20
# (path -> (size, mtime_ns)) of the entries this process has verified: checked once per process.
_VERIFIED: Dict[str, Tuple[int, int]] = {}


def default_cache_dir() -> Path:
    return Path(os.environ.get("LTBENCH_CACHE") or Path.home() / ".cache" / "ltbench")


def cache_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def _chunks(array: np.ndarray):
    """``array`` in C-order slices along its first axis, about _CHUNK_BYTES each."""
    if array.ndim == 0 or array.shape[0] == 0:
        yield array.reshape(-1)
        return
    row_bytes = max(1, array.nbytes // array.shape[0])
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, array.shape[0], step):
        yield np.ascontiguousarray(array[start: start + step])


def integrity_of(array: np.ndarray) -> dict:
    """shape, dtype, bytes and BLAKE2b digest of ``array``'s data, and whether it is all finite
    (``finite`` is not stored: a non-finite array is never cached)."""
    digest = hashlib.blake2b(digest_size=32)
    finite = True
    floating = np.issubdtype(array.dtype, np.floating)
    for chunk in _chunks(array):
        digest.update(chunk.view(np.uint8).reshape(-1).data if chunk.size else b"")
        if floating and finite and not np.isfinite(chunk).all():
            finite = False
    return {"shape": [int(n) for n in array.shape], "dtype": array.dtype.str, "bytes": int(array.nbytes),
            "blake2b": digest.hexdigest(), "finite": finite}


def read_integrity(json_path: Path) -> Optional[dict]:
    try:
        stored = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    integrity = stored.get(INTEGRITY_KEY) if isinstance(stored, dict) else None
    return integrity if isinstance(integrity, dict) else None


def check_entry(npy_path: Path, shape=None, dtype=None) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(the memory-mapped array, None) for a sound entry; (None, what is wrong) for a bad one;
    (None, None) when there is no entry. ``shape`` / ``dtype``: what the caller expects."""
    npy_path = Path(npy_path)
    try:
        stat = npy_path.stat()
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot read it ({error.strerror or error})"
    if stat.st_size == 0:
        return None, "0-byte file"
    try:
        array = np.load(npy_path, mmap_mode="r")
    except Exception as error:  # truncated or garbage header: ValueError, EOFError, OSError, ...
        return None, f"not a readable .npy file ({type(error).__name__}: {str(error)[:80]})"
    if not isinstance(array, np.ndarray):
        return None, "not an array"
    if shape is not None and tuple(array.shape) != tuple(int(n) for n in shape):
        return None, f"shape {tuple(array.shape)}, expected {tuple(int(n) for n in shape)}"
    if dtype is not None and array.dtype != np.dtype(dtype):
        return None, f"dtype {array.dtype}, expected {np.dtype(dtype)}"
    stamp = (stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(str(npy_path)) == stamp:
        return array, None
    stored = read_integrity(npy_path.with_suffix(".json"))
    if stored is None:
        return None, "no integrity record in its .json (written by an older ltbench, or the .json is damaged)"
    if list(array.shape) != list(stored.get("shape", [])) or array.dtype.str != stored.get("dtype"):
        return None, (f"the array is {array.dtype.str} {list(array.shape)}, its integrity record says "
                      f"{stored.get('dtype')} {stored.get('shape')}")
    actual = integrity_of(array)
    if actual["blake2b"] != stored.get("blake2b"):
        return None, "content does not match its checksum (corrupt or changed)"
    if not actual["finite"]:
        return None, "holds NaN or inf values"
    _VERIFIED[str(npy_path)] = stamp
    return array, None


def _report_bad(path: Path, problem: str):
    print(f"ltbench: warning: bad cache entry {path}: {problem}; recomputing it", file=sys.stderr)


def _not_finite(description: dict) -> UserError:
    kind = description.get("kind", "array")
    what = f" of split {description['split']}" if "split" in description else ""
    return UserError(f"the computed {kind}{what} holds NaN or inf values, so it is neither cached nor used; "
                     "check the backbone weights (or run without amp / at precision fp32)")


class ArrayCache:
    def __init__(self, root: Path = None):
        self.root = Path(root) if root else default_cache_dir()
        # Set by check_writable: entries are still read, but nothing is written (a read-only or
        # full cache folder does not stop a run; its numbers are the same without the cache).
        self.read_only = False

    def check_writable(self, warn: Callable[[str], None] = None) -> bool:
        """Whether entries can be written under the root (created if missing). A root that is a
        file is a UserError; an unwritable or full one is reported once and the cache turns
        read-only for this process."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"cache folder {self.root} is a file, not a folder; set LTBENCH_CACHE (or "
                            "runtime.cache_dir) to a folder")
        try:
            (self.root / ENTRIES_FOLDER).mkdir(parents=True, exist_ok=True)
            probe = temp_file_beside(self.root / ENTRIES_FOLDER / "write-probe")
            probe.write_bytes(b"x")
            probe.unlink()
            free = shutil.disk_usage(self.root).free
            problem = None if free >= 64 << 20 else f"only {format_bytes(free)} free"
        except OSError as error:
            problem = error.strerror or str(error)
        if problem is not None:
            self._go_read_only(problem, warn)
        return not self.read_only

    def _go_read_only(self, problem: str, warn=None):
        if not self.read_only:
            self.read_only = True
            (warn or (lambda text: print(text, file=sys.stderr)))(
                f"ltbench: warning: cannot write to the cache {self.root} ({problem}); running without "
                "caching (the numbers do not change); set LTBENCH_CACHE to a writable folder to cache")

    def path(self, key: str) -> Path:
        return self.root / ENTRIES_FOLDER / key[:2] / f"{key}.npy"

    def load(self, key: str, shape=None, dtype=None) -> Optional[np.ndarray]:
        """The verified entry of ``key`` (memory-mapped, read-only), or None: missing, or bad
        (reported in one line; the caller recomputes and replaces it)."""
        path = self.path(key)
        array, problem = check_entry(path, shape, dtype)
        if problem is not None:
            _report_bad(path, problem)
        return array

    def _save_description(self, key: str, description: dict, integrity: dict):
        stored = {**description, INTEGRITY_KEY: {k: v for k, v in integrity.items() if k != "finite"}}
        text = json.dumps(stored, sort_keys=True, default=str, indent=1).encode()
        atomic_write(self.path(key).with_suffix(".json"), lambda handle: handle.write(text), durable=False)

    def save(self, key: str, array: np.ndarray, description: dict):
        integrity = integrity_of(array)
        if not integrity["finite"]:
            raise _not_finite(description)
        # The description first: an array is never in place without the checksum it must match.
        self._save_description(key, description, integrity)
        atomic_write(self.path(key), lambda handle: np.save(handle, array), durable=False)

    def get_or_compute(self, description: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for `description`, computing and storing it on a miss."""
        key = cache_key(description)
        cached = self.load(key)
        if distributed.all_true(cached is not None):
            return cached
        array = np.ascontiguousarray(compute())
        if distributed.is_local_main() and not self.read_only:
            try:
                self.save(key, array, description)
            except OSError as error:  # read-only, full, removed meanwhile: keep going uncached
                self._go_read_only(error.strerror or str(error))
        elif np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise _not_finite(description)
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
        cached = self.load(key, shape, dtype)
        if distributed.all_true(cached is not None):
            return cached
        if self.read_only:
            return _uncached_stream(shape, dtype, fill, description)
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
                integrity = integrity_of(out)  # one more pass over what was just written
            finally:
                del out  # unmap before the rename
            if not integrity["finite"]:
                raise _not_finite(description)
            self._save_description(key, description, integrity)
            publish(temp, self.path(key))
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        distributed.barrier()
        return np.load(self.path(key), mmap_mode="r")


def _uncached_stream(shape, dtype, fill, description) -> np.ndarray:
    """``fill`` into a memory map of an unlinked temp file (a read-only cache: no entry)."""
    import tempfile

    handle, name = tempfile.mkstemp(suffix=".npy", prefix="ltbench-uncached-")
    os.close(handle)
    try:
        _check_free_space(Path(name).parent, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        out = np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)
        fill(out)
        out.flush()
    finally:
        os.unlink(name)  # the map keeps the data until it is dropped
    if not integrity_of(out)["finite"]:
        raise _not_finite(description)
    return out


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
