"""The runner checks a method's logits before any metric: their shape, and that they are finite
(a diverged training gave NaN logits, and metrics of them were written as a record)."""
import numpy as np
import pytest

from ltbench.app.runner import validate_logits
from ltbench.core.errors import UserError


class _Split:
    name = "val"

    def __len__(self):
        return 4


def test_finite_logits_pass_through():
    logits = np.zeros((4, 3), dtype=np.float32)
    assert validate_logits(logits, _Split(), 3, "m") is logits


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_a_one_line_error_naming_the_count(bad):
    logits = np.zeros((4, 3), dtype=np.float32)
    logits[1, 2] = logits[3, 0] = bad
    with pytest.raises(UserError, match=r"method 'm' gave 2 non-finite logits .* on the val split: its training diverged"):
        validate_logits(logits, _Split(), 3, "m")


def test_a_wrong_shape_is_the_method_s_bug():
    with pytest.raises(RuntimeError, match=r"shape \(4, 2\)"):
        validate_logits(np.zeros((4, 2)), _Split(), 3, "m")
