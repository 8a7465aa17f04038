"""The leaderboard rows a figure or a report page shows: one dataset's rows, optionally narrowed by
row selectors (``method[:backbone][@config-hash-prefix]``, as ``ltbench compare`` takes them), with
each run's record path kept beside it, and the legend label of each row.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ltbench.core.errors import UserError
from ltbench.records.compare import parse_selector
from ltbench.records.tables import datasets_in, leaderboard_rows


def _matches(row: dict, selector: str) -> bool:
    method, backbone, config_hash = parse_selector(selector)
    return (row["method"] == method and (backbone is None or row["backbone"] == backbone)
            and (config_hash is None or row["config_hash"].startswith(config_hash)))


def row_name(row: dict) -> str:
    """The selector that names exactly this row: method:backbone@hash6."""
    return f"{row['method']}:{row['backbone']}@{row['config_hash'][:6]}"


def select_rows(loaded: List[Tuple[Path, dict]], dataset: str, selectors: Sequence[str] = (),
                results_dir=None, shot_rule: Optional[str] = None) -> List[dict]:
    """Leaderboard rows of `dataset` (every row, or those some selector matches, in leaderboard
    order), each with row['paths']: the record path of each of row['records'].

    One-line UserErrors: no records for the dataset (naming the datasets that have some), or a
    selector that matches no row (naming the rows there are).
    """
    records = [record for _, record in loaded]
    rows = leaderboard_rows(records, dataset, shot_rule=shot_rule)
    where = f" under {results_dir}" if results_dir is not None else ""
    if not rows:
        known = ", ".join(datasets_in(records)) or "none"
        raise UserError(f"no run records for dataset '{dataset}'{where} (datasets with records: {known}); "
                        "run `ltbench run ...` first or pass --results DIR")
    for selector in selectors:
        if not any(_matches(row, selector) for row in rows):
            names = ", ".join(row_name(row) for row in rows)
            raise UserError(f"row selector '{selector}' matches no run of {dataset}{where} (rows there: {names})")
    if selectors:
        rows = [row for row in rows if any(_matches(row, selector) for selector in selectors)]
    path_of = {id(record): path for path, record in loaded}
    for row in rows:
        row["paths"] = [path_of[id(record)] for record in row["records"]]
    return rows


def row_labels(rows: List[dict]) -> List[str]:
    """Legend labels: the method label, with the backbone and the split where rows differ in them."""
    several_backbones = len({row["backbone"] for row in rows}) > 1
    several_splits = len({row["split"] for row in rows}) > 1
    labels = []
    for row in rows:
        extra = [row["backbone"]] if several_backbones else []
        extra += [row["split"]] if several_splits else []
        seeds = f", {row['seeds']} seeds" if row["seeds"] > 1 else ""
        labels.append(f"{row['method_label']}" + (f" ({', '.join(extra)}{seeds})" if extra else
                                                  (f" ({row['seeds']} seeds)" if seeds else "")))
    return labels
