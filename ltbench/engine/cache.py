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
``integrity`` record (shape, dtype, byte count and a BLAKE2b digest of the array's data: the
digest of its ~64 MB row chunks' digests, so that rows written out of order, as a distributed
extraction writes them, are hashed as they are written). What is verified when
(docs/caching.md):

- writing: the digest and the finiteness check run on the data as it is written (a streamed
  entry's rows as ``fill`` writes them, never a second pass over the file); an array with NaN /
  inf is never cached (computing one is an error). Once the entry is in place its writer leaves
  a stamp, ``<key>.verified``: the .npy's size, mtime, ctime and inode and the digest they were
  verified against;
- reading: shape, dtype and the .npy header every time; the whole digest and finiteness only
  when the stamp does not match the file (no stamp: an older ltbench wrote it, the cache was
  copied, or anything rewrote, touched or replaced the file), after which the reader stamps it.
  A process checks an entry once (``_VERIFIED``). So the processes of a torchrun job and later
  runs read a fresh entry without hashing its 35 to 132 GB again;
- ``ltbench cache verify`` hashes every entry whatever its stamp.

A bad entry (garbage, NaN / inf, 0 bytes, truncated, another shape, no integrity record, a
digest that does not match) is reported in one line on stderr and recomputed.
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
from ltbench.core.atomic import atomic_write, probe_writable, publish, temp_file_beside
from ltbench.core.errors import UserError

# Entries live in <root>/arrays/<first two key characters>/<key>.npy (+ .json description,
# + .verified stamp).
ENTRIES_FOLDER = "arrays"
INTEGRITY_KEY = "integrity"
STAMP_SUFFIX = ".verified"
# The digest's chunks (rows hashed, and checked for finiteness, at a time): memory-mapped
# arrays never load whole. An entry's integrity record names its chunk_rows.
_CHUNK_BYTES = 64 << 20
DIGEST_SCHEME = "blake2b-chunks"
# (path -> file identity) of the entries this process has verified: checked once per process.
_VERIFIED: Dict[str, tuple] = {}


def default_cache_dir() -> Path:
    return Path(os.environ.get("LTBENCH_CACHE") or Path.home() / ".cache" / "ltbench")


# The version of what a key describes. 2: a transform describes every field at its value (before,
# jpeg_draft / gpu_jpeg false and resize null were left out so that older keys stayed valid), and
# configs hash every option (ltbench.config.hashing, CONFIG_HASH_VERSION 2). A new version
# renames every entry once: arrays cached by an older ltbench are computed again, never reused.
CACHE_FORMAT = 2


def cache_key(description: dict) -> str:
    described = {"cache_format": CACHE_FORMAT, **description}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def chunk_rows(shape, dtype) -> int:
    """Rows of ``shape`` / ``dtype`` in one digest chunk: about _CHUNK_BYTES, at least 1."""
    shape = tuple(int(n) for n in shape)
    if not shape:
        return 1
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize)
    return max(1, _CHUNK_BYTES // row_bytes)


def _new_digest():
    return hashlib.blake2b(digest_size=32)


def _chunks(array: np.ndarray, rows: int):
    """``array`` in C-order slices of ``rows`` rows along its first axis (a 0-d or empty array:
    one chunk of its bytes)."""
    if array.ndim == 0 or array.shape[0] == 0:
        yield array.reshape(-1)
        return
    for start in range(0, array.shape[0], rows):
        yield np.ascontiguousarray(array[start: start + rows])


def _bytes_of(chunk: np.ndarray):
    return chunk.view(np.uint8).reshape(-1).data if chunk.size else b""


def _is_finite(chunk: np.ndarray) -> bool:
    return not np.issubdtype(chunk.dtype, np.floating) or bool(np.isfinite(chunk).all())


def _record(shape, dtype, digest, finite: bool, rows: int) -> dict:
    dtype = np.dtype(dtype)
    return {"shape": [int(n) for n in shape], "dtype": dtype.str,
            "bytes": int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, "scheme": DIGEST_SCHEME,
            "chunk_rows": int(rows), "blake2b": digest.hexdigest(), "finite": finite}


def integrity_of(array: np.ndarray, rows: Optional[int] = None) -> dict:
    """shape, dtype, bytes and digest of ``array``'s data (BLAKE2b of its chunks' BLAKE2b
    digests, ``rows`` rows a chunk: chunk_rows by default), and whether it is all finite
    (``finite`` is not stored: a non-finite array is never cached)."""
    rows = chunk_rows(array.shape, array.dtype) if rows is None else int(rows)
    digest, finite = _new_digest(), True
    for chunk in _chunks(array, rows):
        part = _new_digest()
        part.update(_bytes_of(chunk))
        digest.update(part.digest())
        finite = finite and _is_finite(chunk)
    return _record(array.shape, array.dtype, digest, finite, rows)


def _legacy_digest(array: np.ndarray) -> str:
    """The digest entries written before the chunked one carry: BLAKE2b over all the data."""
    digest = _new_digest()
    for chunk in _chunks(array, chunk_rows(array.shape, array.dtype)):
        digest.update(_bytes_of(chunk))
    return digest.hexdigest()


def _digest_as_stored(array: np.ndarray, stored: dict) -> Tuple[str, bool]:
    """(digest of ``array`` by the scheme of its integrity record ``stored``, all finite)."""
    if stored.get("scheme") == DIGEST_SCHEME:
        actual = integrity_of(array, stored.get("chunk_rows"))
        return actual["blake2b"], actual["finite"]
    finite = all(_is_finite(chunk) for chunk in _chunks(array, chunk_rows(array.shape, array.dtype)))
    return _legacy_digest(array), finite


class StreamingIntegrity:
    """The integrity record of an array [shape] of ``dtype`` computed from its rows as they are
    written, in any order: each chunk's digest is taken from the written rows while they arrive
    in order within the chunk (a distributed extraction writes each process's block in order).
    A chunk written otherwise (out of order, partly, or through anything but ``rows_written``)
    is hashed from the array itself by ``finish``: the result is always the array's digest."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        self.rows = chunk_rows(self.shape, self.dtype)
        count = self.shape[0] if self.shape and self.shape[0] else 0
        chunks = -(-count // self.rows) if count else 0
        self._next = [index * self.rows for index in range(chunks)]  # next row each chunk expects
        self._digests = [_new_digest() for _ in range(chunks)]
        self._broken = [False] * chunks
        self.finite = True
        self.untracked = not chunks  # a 0-d or empty array: hashed whole by finish

    def rows_written(self, start: int, rows: np.ndarray):
        """Rows [start, start + len(rows)) now hold ``rows`` (an array of the entry's dtype)."""
        stop = start + len(rows)
        self.finite = self.finite and _is_finite(rows)
        for index in range(start // self.rows, -(-stop // self.rows)):
            first, last = index * self.rows, min((index + 1) * self.rows, self.shape[0])
            lo, hi = max(start, first), min(stop, last)
            if self._broken[index]:
                continue
            if self._next[index] != lo:
                self._broken[index] = True  # out of order or written twice: hashed from the array
                continue
            self._digests[index].update(_bytes_of(np.ascontiguousarray(rows[lo - start: hi - start])))
            self._next[index] = hi

    def finish(self, array: np.ndarray) -> dict:
        """The integrity record of ``array`` (the rows' destination, every row written)."""
        if self.untracked:
            return integrity_of(array, self.rows)
        digest = _new_digest()
        for index, part in enumerate(self._digests):
            last = min((index + 1) * self.rows, self.shape[0])
            if self._broken[index] or self._next[index] != last:
                chunk = np.ascontiguousarray(array[index * self.rows: last])
                part = _new_digest()
                part.update(_bytes_of(chunk))
                self.finite = self.finite and _is_finite(chunk)
            digest.update(part.digest())
        return _record(self.shape, self.dtype, digest, self.finite, self.rows)


class _HashedMap(np.memmap):
    """The writable memory map ``fill`` gets: rows written as ``out[a:b] = rows`` (or
    ``out[:] = ...``) are hashed as they arrive (StreamingIntegrity); any other write (through a
    view, ``fill``, a ufunc's out=, np.copyto) leaves every chunk to be hashed from the file."""

    def __array_finalize__(self, obj):
        super().__array_finalize__(obj)
        self._integrity = None  # views: set below for the map itself only
        self._owner = getattr(obj, "_owner", None) or getattr(obj, "_integrity", None)

    def _untracked(self):
        tracker = getattr(self, "_integrity", None) or getattr(self, "_owner", None)
        if tracker is not None:
            tracker.untracked = True

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        tracker = getattr(self, "_integrity", None)
        rows = _row_range(key, self.shape[0]) if tracker is not None and self.ndim else None
        if rows is None:
            self._untracked()
            return
        start, stop = rows
        value = np.asarray(value)
        if value.dtype != self.dtype or value.shape != (stop - start,) + self.shape[1:]:
            value = np.asarray(self[start: stop])  # broadcast or converted: the stored rows
        tracker.rows_written(start, value)

    def fill(self, value):
        self._untracked()
        super().fill(value)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(isinstance(item, _HashedMap) for item in kwargs.get("out", ()) or ()):
            self._untracked()
        inputs = tuple(np.asarray(item) if isinstance(item, _HashedMap) else item for item in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(item.view(np.memmap) if isinstance(item, _HashedMap) else item
                                  for item in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.copyto, np.put, np.place, np.putmask) and args and isinstance(args[0], _HashedMap):
            self._untracked()
        return super().__array_function__(func, types, args, kwargs)


def _row_range(key, rows: int) -> Optional[Tuple[int, int]]:
    """(start, stop) of a key that selects whole rows start..stop-1 (a step-1 slice, ..., or one
    with full slices after it), else None."""
    if isinstance(key, tuple):
        rest = key[1:]
        if not all(item is Ellipsis or item == slice(None) for item in rest):
            return None
        key = key[0] if key else Ellipsis
    if key is Ellipsis:
        return 0, rows
    if isinstance(key, slice) and key.step in (None, 1):
        start, stop, _ = key.indices(rows)
        return start, max(start, stop)
    return None


def read_integrity(json_path: Path) -> Optional[dict]:
    try:
        stored = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    integrity = stored.get(INTEGRITY_KEY) if isinstance(stored, dict) else None
    return integrity if isinstance(integrity, dict) else None


def _identity(stat: os.stat_result) -> dict:
    """What changes when a file is rewritten, touched, replaced or copied: size, mtime, ctime
    (which no user can set back) and inode."""
    return {"size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns), "ctime_ns": int(stat.st_ctime_ns),
            "inode": int(stat.st_ino)}


def stamp_path(npy_path: Path) -> Path:
    return Path(npy_path).with_suffix(STAMP_SUFFIX)


def _stamp_matches(npy_path: Path, stat: os.stat_result, digest) -> bool:
    try:
        stamp = json.loads(stamp_path(npy_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp == {**_identity(stat), "blake2b": digest}


def write_stamp(npy_path: Path, digest: str) -> None:
    """Record that the .npy as it is now holds data of ``digest`` (best effort: a cache that
    cannot be written is read without stamps, each process verifying what it reads)."""
    try:
        text = json.dumps({**_identity(Path(npy_path).stat()), "blake2b": digest}, sort_keys=True).encode()
        atomic_write(stamp_path(npy_path), lambda handle: handle.write(text), durable=False)
    except OSError:
        pass


def check_entry(npy_path: Path, shape=None, dtype=None, rehash: bool = False
                ) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(the memory-mapped array, None) for a sound entry; (None, what is wrong) for a bad one;
    (None, None) when there is no entry. ``shape`` / ``dtype``: what the caller expects.
    rehash: hash the data even when its stamp matches (`ltbench cache verify`)."""
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
    identity = tuple(_identity(stat).values())
    if not rehash and _VERIFIED.get(str(npy_path)) == identity:
        return array, None
    stored = read_integrity(npy_path.with_suffix(".json"))
    if stored is None:
        return None, "no integrity record in its .json (written by an older ltbench, or the .json is damaged)"
    if list(array.shape) != list(stored.get("shape", [])) or array.dtype.str != stored.get("dtype"):
        return None, (f"the array is {array.dtype.str} {list(array.shape)}, its integrity record says "
                      f"{stored.get('dtype')} {stored.get('shape')}")
    if rehash or not _stamp_matches(npy_path, stat, stored.get("blake2b")):
        digest, finite = _digest_as_stored(array, stored)
        if digest != stored.get("blake2b"):
            return None, "content does not match its checksum (corrupt or changed)"
        if not finite:
            return None, "holds NaN or inf values"
        write_stamp(npy_path, digest)
    _VERIFIED[str(npy_path)] = identity
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
            free = probe_writable(self.root / ENTRIES_FOLDER)
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
        integrity = integrity_of(array)  # of the array in memory, before it is written
        if not integrity["finite"]:
            raise _not_finite(description)
        # The description first: an array is never in place without the checksum it must match.
        self._save_description(key, description, integrity)
        atomic_write(self.path(key), lambda handle: np.save(handle, array), durable=False)
        write_stamp(self.path(key), integrity["blake2b"])

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
        private temp .npy file in the cache folder: the array never has to fit in memory. Rows
        written as ``out[a:b] = rows`` are hashed as they are written (StreamingIntegrity), so
        the entry's checksum needs no second pass over a file of up to 132 GB; anything written
        otherwise is hashed from the file once ``fill`` returns. The file is renamed into place
        only once ``fill`` returns, so a failure (or an interrupt) leaves neither an entry nor a
        temp file, and concurrent writers of one key each fill their own file (the last rename
        wins). An entry of another shape or dtype counts as a miss. In a distributed run the
        processes that do not write call ``fill(None)`` (they take part in the computing) and
        read the entry once it is in place, by its writer's stamp (no hashing while they wait).
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
            return self._published(key, shape, dtype)
        temp = temp_file_beside(self.path(key))
        try:
            _check_free_space(temp.parent, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            out, integrity = _hashed_map(temp, shape, dtype)
            try:
                fill(out)
                out.flush()
                record = integrity.finish(out)  # only chunks fill did not write row by row are read
            finally:
                del out  # unmap before the rename
            if not record["finite"]:
                raise _not_finite(description)
            self._save_description(key, description, record)
            publish(temp, self.path(key))
            write_stamp(self.path(key), record["blake2b"])
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        distributed.barrier()
        return self._published(key, shape, dtype)

    def _published(self, key: str, shape, dtype) -> np.ndarray:
        """The entry a writer has just put in place (read by its stamp: not hashed again)."""
        array, problem = check_entry(self.path(key), shape, dtype)
        if array is None:
            raise RuntimeError(f"the cache entry {self.path(key)} its writer just published cannot be read: "
                               f"{problem or 'it is missing'}")
        return array


def _hashed_map(path, shape, dtype):
    """(a writable memory map of a new .npy at ``path`` that hashes rows as they are written,
    its StreamingIntegrity)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).view(_HashedMap)
    out._integrity = StreamingIntegrity(shape, dtype)
    return out, out._integrity


def _uncached_stream(shape, dtype, fill, description) -> np.ndarray:
    """``fill`` into a memory map of an unlinked temp file (a read-only cache: no entry)."""
    import tempfile

    handle, name = tempfile.mkstemp(suffix=".npy", prefix="ltbench-uncached-")
    os.close(handle)
    try:
        _check_free_space(Path(name).parent, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        out, integrity = _hashed_map(name, shape, dtype)
        fill(out)
        out.flush()
    finally:
        os.unlink(name)  # the map keeps the data until it is dropped
    if not integrity.finish(out)["finite"]:
        raise _not_finite(description)
    return out.view(np.memmap)


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
