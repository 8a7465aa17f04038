"""Per-run lock files: two identical runs (same record path) on one machine never work in one
folder at once. The lock files live in the system's temp folder (ltbench-locks/), not in the
results folder.

The second one waits for the first (an OS file lock, released when its holder exits, even by
kill -9), and then uses the record the first one wrote if that appeared while it waited, instead
of training the same thing again. Where the platform has no fcntl (Windows), runs do not lock.
"""
import sys
from pathlib import Path
from typing import Callable, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _mtime(path: Path) -> Optional[int]:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class RunLock:
    """An exclusive lock on a lock file named after the record path (in the temp folder)."""

    def __init__(self, lock_path: Path, handle):
        self.lock_path, self._handle = lock_path, handle
        self.finished_meanwhile = False

    @classmethod
    def acquire(cls, record: Path, lock_path: Path, log: Callable[[str], None] = None) -> "RunLock":
        """Take the lock, waiting (with one line of explanation) while another process holds it.
        ``finished_meanwhile``: the record was written (or rewritten) while this one waited."""
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")
        lock = cls(lock_path, handle)
        if fcntl is None:
            return lock
        before = _mtime(record)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            pass
        (log or (lambda text: print(text, file=sys.stderr)))(
            f"ltbench: an identical run holds {lock_path}; waiting for it to finish")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        lock.finished_meanwhile = _mtime(record) not in (None, before)
        return lock

    def release(self):
        if self._handle is not None:
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __del__(self):
        self.release()
