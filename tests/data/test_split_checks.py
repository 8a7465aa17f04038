"""Duplicate split lines, extra class names and duplicate class names are errors (issue 13, item 6)."""
import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.data import build_dataset


def _two_per_class(make, root, **options):
    """Two uniform 8x8 images per class and split."""
    return make(root, per_class=2, pixels=lambda label, index: np.full((8, 8, 3), 40 * label + index, dtype=np.uint8),
                **options)


def test_a_duplicate_split_line_is_an_error_naming_both_lines(tmp_path, folder_dataset):
    spec = _two_per_class(folder_dataset, tmp_path, train_lines=lambda lines: lines + [lines[1]])
    with pytest.raises(UserError) as error:
        build_dataset(spec)
    message = str(error.value)
    assert "train.txt:5" in message and "first at line 2" in message and "dataset.allow_duplicates=true" in message


def test_allow_duplicates_counts_them_twice(tmp_path, folder_dataset):
    spec = _two_per_class(folder_dataset, tmp_path, train_lines=lambda lines: lines + [lines[1]])
    data = build_dataset({**spec, "allow_duplicates": True})
    assert len(data.split("train")) == 5


def test_more_class_names_than_labels_is_an_error(tmp_path, folder_dataset):
    spec = _two_per_class(folder_dataset, tmp_path, names="cat\ndog\nbird\n")
    with pytest.raises(UserError, match="lists 3 class names, but the split files use labels 0..1 only"):
        build_dataset(spec)


def test_a_duplicate_class_name_is_an_error(tmp_path, folder_dataset):
    spec = _two_per_class(folder_dataset, tmp_path, names="cat\ncat\n")
    with pytest.raises(UserError, match="class name 'cat' is given twice"):
        build_dataset(spec)


def test_run_and_data_check_report_a_duplicate_line(run_cli, tmp_path, folder_dataset):
    _two_per_class(folder_dataset, tmp_path, train_lines=lambda lines: lines + [lines[0]])
    options = ["--cfg-options", "dataset.train_list=train.txt", "dataset.test_list=test.txt",
               "dataset.classnames=names.txt"]
    code, _, err = run_cli("data", "check", "folder_lt", "--data-root", tmp_path, *options)
    assert code != 0 and "train.txt:5" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "folder_lt", "--backbone", "tiny",
                           "--out", tmp_path / "out", "--data-root", tmp_path, *options)
    assert code != 0 and "train.txt:5" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli("data", "check", "folder_lt", "--data-root", tmp_path, *options,
                             "dataset.allow_duplicates=true")
    assert code == 0, err


def test_data_check_lists_every_duplicate_line_capped(run_cli, tmp_path, folder_dataset):
    # 4 train lines (2 per class); append 7 repeats: lines 5..11 repeat lines 1..4, 1..3.
    _two_per_class(folder_dataset, tmp_path, train_lines=lambda lines: lines + lines + lines[:3])
    options = ["--cfg-options", "dataset.train_list=train.txt", "dataset.test_list=test.txt",
               "dataset.classnames=names.txt"]
    code, _, err = run_cli("data", "check", "folder_lt", "--data-root", tmp_path, *options)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "train.txt:5: 7 lines repeat an image listed earlier" in err, err
    for line, first in ((5, 1), (6, 2), (7, 3), (8, 4), (9, 1)):
        assert f"line {line} repeats line {first} (img/train_" in err, err
    assert "line 10 repeats" not in err and "... and 2 more" in err and "dataset.allow_duplicates=true" in err, err
