"""The one atomic writer: every record, table, checkpoint, logits file and cache entry goes
through ``atomic_write``.

A file is written under a unique temp name beside its target (same file system, so the rename
is atomic) and renamed into place only when complete: readers never see half a file, a failed
or interrupted write leaves the previous file as it was, and two processes writing the same
target never share a temp file.
"""
import contextlib
import contextvars
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, List, Tuple

from ltbench.core.errors import UserError

# Temp files end in '.tmp' so that one abandoned by a killed process is never read as a record
# (`runs/**/*.json`) or a cache entry (`*.npy`); `ltbench cache rm --kind temp` removes them.
TEMP_SUFFIX = ".tmp"


def temp_file_beside(path: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A new, empty, private file in `path`'s folder (created, so no other writer can take it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(descriptor)
    return Path(name)


def probe_writable(folder) -> int:
    """Create ``folder`` (and its parents) if missing and write one byte to a new file in it, then
    remove it; returns the bytes free on its disk. An OSError says why it cannot be written (a
    read-only or full disk, no permission, a file in the way): the one probe behind ``--out``, the
    cache folder and the figure / report folders, each of which words its own error."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Creating the folder is not enough (an existing read-only folder): try one file in it, under a
    # unique name (removed when closed), so that concurrent runs never probe with one file.
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".ltbench-write-probe.", suffix=TEMP_SUFFIX) as probe:
        probe.write(b"x")
        probe.flush()
    return shutil.disk_usage(folder).free


def publish(temp: Path, path: Path, mode: int = 0o644) -> None:
    """Rename a finished temp file onto `path` (mkstemp creates 0600; results are shared)."""
    os.chmod(temp, mode)
    os.replace(temp, path)


class WriteFailed(UserError, OSError):
    """A write the file system refused (disk full, read-only, permission denied): a UserError, so
    the CLI prints one line naming the file and the fix, and still an OSError with its errno, so
    callers that carry on without writing (the feature cache) catch it as before."""

    def __init__(self, path: Path, error: OSError):
        OSError.__init__(self, error.errno, error.strerror or str(error))
        self.path = Path(path)
        self.message = f"cannot write {self.path}: {error.strerror or error}; {_fix_for(error.errno)}"

    def __str__(self):
        return self.message


def _fix_for(code) -> str:
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "free some space on that disk, or pass --out DIR on another disk"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "pass --out DIR with a folder you can write"
    return "check the disk, or pass --out DIR elsewhere"


# The temp files of the innermost `publish_together` block: (temp, target, mode).
_staged: contextvars.ContextVar = contextvars.ContextVar("ltbench_atomic_staged", default=None)


@contextlib.contextmanager
def publish_together():
    """Atomic writes inside the block are renamed into place only when the whole block succeeds;
    if any write (or anything else) fails, every temp file of the block is removed and no target
    changes. For files that belong together: a run's record, logits and per-sample file."""
    staged: List[Tuple[Path, Path, int]] = []
    token = _staged.set(staged)
    try:
        yield
    except BaseException:
        _staged.reset(token)
        for temp, _, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        raise
    _staged.reset(token)
    for index, (temp, path, mode) in enumerate(staged):
        try:
            publish(temp, path, mode)
        except OSError as error:  # a rename that fails: the files not yet renamed stay as they were
            for later, _, _ in staged[index:]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(later)
            raise WriteFailed(path, error) from None


def atomic_write(path, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Call write(handle) on a binary temp file, then rename it onto `path` (at the end of the
    enclosing `publish_together` block, if there is one).

    durable: fsync before the rename, so a crash of the machine cannot leave an empty file
    under the final name (records and checkpoints); cache entries, which can be recomputed,
    skip it. A refused write (OSError) is a WriteFailed naming `path`; no temp file is left.
    """
    path = Path(path)
    temp = None
    try:
        temp = temp_file_beside(path)
        with open(temp, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        staged = _staged.get()
        if staged is None:
            publish(temp, path)
        else:
            staged.append((temp, path, 0o644))
    except BaseException as error:
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        if isinstance(error, OSError) and not isinstance(error, WriteFailed):
            raise WriteFailed(path, error) from None
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
