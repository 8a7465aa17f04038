"""A full disk or a read-only / forbidden --out while a run writes (issue 13): a one-line error
naming the file and the fix, a non-zero exit, no traceback, no temp file left and the records
already there unchanged. Tests run as root, which chmod does not stop, so the refusals are made
in-process: the atomic writer's open / mkstemp / os.replace raise for paths under --out."""
import errno
import os
import tempfile
from pathlib import Path

import pytest

import ltbench.core.atomic as atomic

RUN = ["run", "--method", "linear_probe", "--dataset", "digits_lt", "--no-progress", "--save-logits"]



@pytest.fixture
def results(tmp_path):
    """A results folder that already holds a record (its content does not matter here: only
    that it stays as it was)."""
    out = tmp_path / "results"
    record = out / "runs" / "digits_lt" / "zeroshot_clip__tiny__0123456789__seed0.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"method": "zeroshot_clip", "metrics": {"overall": 10.0}}\n')
    return out


class _RefusingHandle:
    """A real file whose writes fail as a full (or read-only) disk fails them."""

    def __init__(self, handle, code):
        self._handle, self._code = handle, code

    def write(self, data):
        raise OSError(self._code, os.strerror(self._code))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _under(path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _refuse_writes(monkeypatch, folder, code, suffix=""):
    """Writes of files under `folder` (whose target name ends in `suffix`) fail with `code`."""
    def refusing_open(file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        target = Path(file).name.rsplit(".", 2)[0] if Path(file).name.startswith(".") else Path(file).name
        if "w" in mode and _under(file, folder) and target.endswith(suffix):
            return _RefusingHandle(handle, code)
        return handle

    monkeypatch.setattr(atomic, "open", refusing_open, raising=False)  # shadows the builtin there only


def _refuse_temp_files(monkeypatch, folder, code):
    real = tempfile.mkstemp

    def refusing_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and _under(dir, folder):
            raise OSError(code, os.strerror(code), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refusing_mkstemp)


def _refuse_renames(monkeypatch, folder, code):
    real = os.replace

    def refusing_replace(source, target, *args, **kwargs):
        if _under(target, folder):
            raise OSError(code, os.strerror(code), str(target))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", refusing_replace)


CASES = [
    # (id, how the file system refuses, errno, what the message must say)
    ("disk_full_while_writing", _refuse_writes, errno.ENOSPC, ["No space left on device", "free some space"]),
    ("read_only_at_temp_file", _refuse_temp_files, errno.EROFS, ["Read-only file system", "--out DIR"]),
    ("permission_denied_at_rename", _refuse_renames, errno.EACCES, ["Permission denied", "--out DIR"]),
]


def _assert_one_line_error(code, out, err, results, named):
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("ltbench: error: cannot write ") and str(results) in lines[0], lines[0]
    for part in named:
        assert part in lines[0], (part, lines[0])
    assert not [p for p in results.rglob("*") if p.name.endswith(atomic.TEMP_SUFFIX)]


@pytest.mark.parametrize("case_id, refuse, code, named", CASES, ids=[case[0] for case in CASES])
def test_a_refused_write_is_a_one_line_error_that_changes_nothing(run_cli, results, tmp_path, monkeypatch,
                                                                 case_id, refuse, code, named, checksum):
    before = checksum(results)
    refuse(monkeypatch, results, code)
    exit_code, out, err = run_cli(*RUN, "--out", results, "--cfg-options", "train.epochs=1",
                                  f"runtime.cache_dir={tmp_path / 'cache'}")
    _assert_one_line_error(exit_code, out, err, results, named)
    assert checksum(results) == before


def test_a_disk_that_fills_at_the_record_leaves_no_logits_or_per_sample_file(run_cli, results, tmp_path,
                                                                             monkeypatch, checksum):
    # The epoch checkpoint (work/) and the logits are written; the record's .json is refused: the
    # record, its logits and its per-sample file are published together, so none of them appears.
    runs_before = checksum(results / "runs")
    _refuse_writes(monkeypatch, results, errno.ENOSPC, suffix=".json")
    exit_code, out, err = run_cli(*RUN, "--out", results, "--cfg-options", "train.epochs=1",
                                  f"runtime.cache_dir={tmp_path / 'cache'}")
    _assert_one_line_error(exit_code, out, err, results, ["No space left on device", ".json"])
    assert checksum(results / "runs") == runs_before
    monkeypatch.undo()
    # The epoch checkpoint it left lets a rerun skip training.
    exit_code, out, err = run_cli(*RUN, "--out", results, "--resume", "--cfg-options", "train.epochs=1",
                                  f"runtime.cache_dir={tmp_path / 'cache'}")
    assert exit_code == 0, err


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_cache_rm_all_on_a_read_only_cache_is_one_line_naming_the_folder(run_cli, tmp_path, monkeypatch,
                                                                         checksum, code):
    """`ltbench cache rm --all` where the file system refuses the removals (root ignores chmod,
    so unlink refuses here): one line naming the cache folder, the cache as it was."""
    import numpy as np

    from ltbench.engine.cache import ArrayCache, cache_key

    cache = ArrayCache(tmp_path / "cache")
    for n in range(2):
        description = {"kind": "image_features", "n": n}
        cache.save(cache_key(description), np.zeros((3, 4), np.float32), description)
    before = checksum(cache.root)
    real_unlink = Path.unlink

    def refusing_unlink(path, *args, **kwargs):
        if _under(path, cache.root):
            raise OSError(code, os.strerror(code), str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", refusing_unlink)
    exit_code, out, err = run_cli("cache", "rm", "--all", "--cache-dir", cache.root)
    lines = err.strip().splitlines()
    assert exit_code != 0 and len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("ltbench: error: cannot remove ") and str(cache.root) in lines[0], lines[0]
    assert os.strerror(code) in lines[0] and "--cache-dir DIR" in lines[0]
    assert checksum(cache.root) == before
