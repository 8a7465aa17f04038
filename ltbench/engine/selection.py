"""Choices a method makes on the val split (a temperature, ensemble weights, the best epoch), and
what the record says about where they were made.

Some datasets have no val split of their own: iNaturalist 2018's val file is its test split, and
CIFAR-LT's val split is its test split. A choice made there is made on the evaluation images
themselves and flatters the result: the run warns (once, however many choices it makes) and the
record says so (``VAL_IS_EVALUATION``), so a table reader can tell.
"""
from typing import Tuple

from ltbench.core.errors import UserError

VAL_IS_EVALUATION = "val (the evaluation images themselves)"


def choose_on_val(data, eval_split: str, what: str, ctx, fix: str = "") -> Tuple[object, str]:
    """(the val split to choose ``what`` on, where it was chosen for the record: ``"val"``, or
    VAL_IS_EVALUATION when val holds the images of ``eval_split``, the run's evaluation split).

    ``what`` names the choice in the messages ("tau", "stage1's best epoch"); ``fix`` says how to
    get an unbiased result instead, added to the warning. A dataset without a val split is a
    one-line UserError (the caller may check it earlier, before any work, in its own words).
    """
    if "val" not in data.splits:
        raise UserError(f"{what} is chosen on val, but dataset '{data.name}' has no val split")
    val, evaluated = data.split("val"), data.split(eval_split)
    if val.fingerprint != evaluated.fingerprint:
        return val, "val"
    ctx.warn_once(f"warning: {what} is chosen on val, which is the {evaluated.name} split itself for {data.name}: "
                  f"the result is optimistic" + (f"; {fix}" if fix else ""), key="val is the evaluation split")
    return val, VAL_IS_EVALUATION
