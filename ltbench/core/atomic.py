"""The one atomic writer: every record, table, checkpoint, logits file and cache entry goes
through ``atomic_write``.

A file is written under a unique temp name beside its target (same file system, so the rename
is atomic) and renamed into place only when complete: readers never see half a file, a failed
or interrupted write leaves the previous file as it was, and two processes writing the same
target never share a temp file.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

# Temp files end in '.tmp' so that one abandoned by a killed process is never read as a record
# (`runs/**/*.json`) or a cache entry (`*.npy`); `ltbench cache rm --kind temp` removes them.
TEMP_SUFFIX = ".tmp"


def temp_file_beside(path: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A new, empty, private file in `path`'s folder (created, so no other writer can take it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(descriptor)
    return Path(name)


def publish(temp: Path, path: Path, mode: int = 0o644) -> None:
    """Rename a finished temp file onto `path` (mkstemp creates 0600; results are shared)."""
    os.chmod(temp, mode)
    os.replace(temp, path)


def atomic_write(path, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Call write(handle) on a binary temp file, then rename it onto `path`.

    durable: fsync before the rename, so a crash of the machine cannot leave an empty file
    under the final name (records and checkpoints); cache entries, which can be recomputed,
    skip it.
    """
    path = Path(path)
    temp = temp_file_beside(path)
    try:
        with open(temp, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        publish(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_text_atomic(path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data))


def _json_default(value):
    # numpy scalars and arrays (class counts, timings) and paths reach records from many places.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json_atomic(path, data) -> None:
    # Serialize first: a value that cannot be written fails before any file is touched.
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def torch_save_atomic(state, path) -> None:
    import torch

    atomic_write(path, lambda handle: torch.save(state, handle))
