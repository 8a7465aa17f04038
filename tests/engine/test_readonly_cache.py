"""A cache folder that cannot be written does not stop a run (issue 13, item 10): one warning,
no entries written, the same numbers. (Tests run as any user, root included, so the folder's
writes are made to fail in the cache module rather than by file permissions.)"""
import errno
import json
from pathlib import Path

import pytest

from ltbench.engine import cache as cache_module


def _deny_writes(monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cache_module, "probe_writable", denied)  # what check_writable tries first
    monkeypatch.setattr(cache_module, "temp_file_beside", denied)
    monkeypatch.setattr(cache_module, "atomic_write", denied)


def _run(run_cli, out, cache, method, *options):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--no-progress", "--out", out,
                                   "--cfg-options", f"runtime.cache_dir={cache}", *options)
    assert code == 0, stderr
    record = json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())
    return record["metrics"], stderr


@pytest.mark.slow  # runs twice per method: outside the inner loop
@pytest.mark.parametrize("method, options", [
    ("linear_probe", ["train.epochs=3"]),
    ("decoder_ce", ["stage1.iterations=20", "stage1.tokens_cache=true", "stage1.augment.enabled=false"]),
])
def test_a_read_only_cache_warns_once_and_changes_no_number(run_cli, tmp_path, monkeypatch, method, options):
    reference, _ = _run(run_cli, tmp_path / "a", tmp_path / "writable", method, *options)
    cache_module._VERIFIED.clear()
    with monkeypatch.context() as patch:
        _deny_writes(patch)
        cold, stderr = _run(run_cli, tmp_path / "b", tmp_path / "read_only", method, *options)
        warm, warm_stderr = _run(run_cli, tmp_path / "c", tmp_path / "writable", method, *options)
    assert cold == reference and warm == reference
    warnings = [line for line in stderr.splitlines() if "cannot write to the cache" in line]
    assert len(warnings) == 1 and "running without caching" in warnings[0]
    assert not list((tmp_path / "read_only").rglob("*.npy"))


def test_a_cache_folder_that_is_a_file_is_a_one_line_error(run_cli, tmp_path):
    path = tmp_path / "cache_file"
    path.write_text("x")
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
                           "--out", tmp_path / "out", "--cfg-options", f"runtime.cache_dir={path}")
    assert code != 0 and len(err.strip().splitlines()) == 1 and str(path) in err and "is a file" in err
    assert not (tmp_path / "out" / "runs").exists()


def test_out_that_is_a_file_is_a_one_line_error(run_cli, tmp_path):
    path = tmp_path / "out_file"
    path.write_text("x")
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--no-progress",
                           "--out", path)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--out" in err and "is a file" in err
    assert path.read_text() == "x"
