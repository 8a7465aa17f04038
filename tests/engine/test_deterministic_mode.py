"""The config's deterministic mode (issue 22): it sets torch, cuDNN and cuBLAS before CUDA starts,
is refused where CUDA already started without CUBLAS_WORKSPACE_CONFIG, records itself, keeps
the hash of runs without it, and changes no number on the CPU."""
import json
import os
from pathlib import Path

import pytest
import torch

from ltbench.core.determinism import apply_determinism, numerics
from ltbench.core.errors import UserError
from ltbench.engine.stages import Stage


@pytest.fixture
def restore_determinism(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    apply_determinism(False)


def test_the_mode_sets_torch_cudnn_and_cublas_and_a_false_run_unsets_them(restore_determinism):
    apply_determinism(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert numerics()["deterministic"] is True and numerics()["cublas_workspace_config"] == ":4096:8"
    apply_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    with pytest.raises(UserError, match="deterministic='maybe': expected true or false"):
        resolve(RunRequest("zeroshot_clip", "digits_lt", options=parse_cfg_options(["deterministic=maybe"])))


def test_the_mode_is_refused_once_cuda_started_without_the_cublas_setting(restore_determinism, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(UserError, match="export CUBLAS_WORKSPACE_CONFIG=:4096:8 before starting ltbench"):
        apply_determinism(True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # set by the user before CUDA started: fine
    apply_determinism(True)
    assert torch.are_deterministic_algorithms_enabled()


def test_a_deterministic_run_reuses_only_deterministic_stages(tmp_path):
    class Ctx:
        seed, deterministic = 0, False

        def shared_work_dir(self, name):
            return tmp_path / name

    stage, ctx, deterministic = Stage("s", "stage", "s.pt", "s_checkpoint"), Ctx(), Ctx()
    deterministic.deterministic = True
    assert stage.folder(ctx, "tiny", {"lr": 1}) != stage.folder(deterministic, "tiny", {"lr": 1})


def _record(stdout):
    return json.loads(Path(stdout.strip().splitlines()[-1].removeprefix("record: ")).read_text())


def test_a_deterministic_run_records_itself_and_gets_the_same_numbers_on_the_cpu(run_cli, tmp_path,
                                                                                   restore_determinism):
    common = ("run", "--method", "linear_probe", "--dataset", "digits_lt", "--no-progress", "--cfg-options",
              "train.epochs=3")
    code, out, err = run_cli(*common, "--out", tmp_path / "plain")
    assert code == 0, err
    plain = _record(out)
    code, out, err = run_cli(*common, "deterministic=true", "--out", tmp_path / "deterministic")
    assert code == 0, err
    deterministic = _record(out)
    assert deterministic["numerics"]["deterministic"] is True and plain["numerics"]["deterministic"] is False
    assert deterministic["numerics"]["cublas_workspace_config"] == ":4096:8"
    assert deterministic["config"]["deterministic"] is True
    assert deterministic["config_hash"] != plain["config_hash"]  # GPU numbers may differ: another run
    assert "deterministic" in plain["config"]
    assert deterministic["metrics"] == plain["metrics"]  # the CPU kernels are deterministic already
    code, _, err = run_cli(*common, "deterministic=maybe", "--out", tmp_path / "bad")
    assert code == 2 and "deterministic='maybe': expected true or false" in err
