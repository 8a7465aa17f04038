"""choose_on_val: where a choice on val is made, and the one warning when val is the evaluation split."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ltbench.core.errors import UserError
from ltbench.engine.cache import ArrayCache
from ltbench.engine.context import RunContext
from ltbench.engine.selection import VAL_IS_EVALUATION, choose_on_val


def _context(tmp_path):
    return RunContext(device=torch.device("cpu"), seed=0, work_dir=Path(tmp_path) / "work",
                      cache=ArrayCache(Path(tmp_path) / "cache"), progress=False)


def _data(val_fingerprint="t"):
    test = SimpleNamespace(name="test", fingerprint="t")
    val = test if val_fingerprint == "t" else SimpleNamespace(name="val", fingerprint=val_fingerprint)
    return SimpleNamespace(name="inat2018", splits={"val": val, "test": test}, split=lambda name: {"val": val,
                                                                                                    "test": test}[name])


def test_a_val_split_of_its_own_is_chosen_on_without_a_warning(tmp_path, capsys):
    data = _data("v")
    split, origin = choose_on_val(data, "test", "tau", _context(tmp_path))
    assert split is data.split("val") and origin == "val"
    assert capsys.readouterr().err == ""


def test_a_val_split_that_is_the_test_split_warns_once_per_run_its_parts_included(tmp_path, capsys):
    ctx, data = _context(tmp_path), _data()
    split, origin = choose_on_val(data, "test", "tau", ctx, fix="fix tau for an unbiased one")
    assert split is data.split("test") and origin == VAL_IS_EVALUATION == "val (the evaluation images themselves)"
    # A second choice in the run, and one in a part of it (an ensemble member), say nothing more.
    assert choose_on_val(data, "test", "the ensemble's weights", ctx)[1] == VAL_IS_EVALUATION
    assert choose_on_val(data, "test", "stage1's best epoch", ctx.for_part("member"))[1] == VAL_IS_EVALUATION
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["warning: tau is chosen on val, which is the test split itself for inat2018: the result is "
                     "optimistic; fix tau for an unbiased one"]
    # Another run (a new context) warns again.
    choose_on_val(data, "test", "tau", _context(tmp_path))
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_dataset_without_val_is_a_one_line_error(tmp_path):
    data = SimpleNamespace(name="toy", splits={"test": None}, split=lambda name: None)
    with pytest.raises(UserError, match="tau is chosen on val, but dataset 'toy' has no val split"):
        choose_on_val(data, "test", "tau", _context(tmp_path))
