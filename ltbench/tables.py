"""Leaderboards from run records: one row per configuration, mean ± sample std over its seeds.

Rows are built (leaderboard_rows) apart from how they are shown (render_table), so that columns
from elsewhere, such as published numbers, can be joined onto the rows before rendering.
"""
import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
from tabulate import tabulate

from ltbench.errors import unknown_name
from ltbench.metrics import GROUPS, SHOT_RULES, grouped_accuracy
from ltbench.results import slug, write_text_atomic

METRICS = (*GROUPS, "overall")
METRIC_HEADERS = {"many": "Many", "medium": "Medium", "few": "Few", "overall": "Overall"}
LABEL_HEADERS = ["Method", "Backbone", "Split", "Seeds"]
TABULATE_FORMATS = {"md": "pipe", "latex": "latex_booktabs"}
TABLE_SUFFIXES = {"md": ".md", "csv": ".csv", "latex": ".tex"}


def datasets_in(records: Iterable[dict]) -> List[str]:
    return sorted({record["dataset"] for record in records})


def _metric_values(record: dict, shot_rule: Optional[str]) -> Dict[str, Optional[float]]:
    """many / medium / few / overall of one run, regrouped when shot_rule differs from the recorded one."""
    metrics = record["metrics"]
    if shot_rule is None or shot_rule == metrics["shot_rule"]:
        return {name: metrics[name] for name in METRICS}
    per_class = np.array([np.nan if v is None else v for v in metrics["per_class_accuracy"]], dtype=np.float64)
    return {**grouped_accuracy(per_class, record["class_counts"], shot_rule), "overall": metrics["overall"]}


def _mean_and_std(values: List[Optional[float]]) -> Dict[str, Optional[float]]:
    # A group can be empty in a run (no few-shot class evaluated): average over the runs that have it.
    present = [value for value in values if value is not None]
    if not present:
        return {"mean": None, "std": None}
    std = float(np.std(present, ddof=1)) if len(present) > 1 else None
    return {"mean": float(np.mean(present)), "std": std}


def _newest_per_seed(records: List[dict]) -> List[dict]:
    """One record per seed, the newest by 'created' (a rerun replaces the earlier run), by seed."""
    newest = {}
    for record in records:
        seed = record["seed"]
        if seed not in newest or record["created"] > newest[seed]["created"]:
            newest[seed] = record
    # Seed order fixes the order of the sums, so the numbers do not depend on the input order.
    return [newest[seed] for seed in sorted(newest)]


def leaderboard_rows(records: Iterable[dict], dataset: str, shot_rule: Optional[str] = None) -> List[dict]:
    """One row per (method, backbone, eval split, config hash) of the dataset's records.

    Each row: method, method_label (with ' [<hash[:6]>]' where a method, backbone and split was
    run with several configurations), backbone, split, config_hash, seeds (count), and for each of
    many / medium / few / overall a {'mean', 'std'} over the seeds (std None for one seed).
    shot_rule: regroup classes under this rule instead of the rule each run recorded.
    """
    if shot_rule is not None and shot_rule not in SHOT_RULES:
        raise unknown_name("shot rule", shot_rule, SHOT_RULES)
    configurations = defaultdict(list)
    for record in records:
        if record["dataset"] == dataset:
            configurations[record["method"], record["backbone"], record["eval_split"], record["config_hash"]].append(record)
    hashes_per_setting = defaultdict(set)
    for method, backbone, split, config_hash in configurations:
        hashes_per_setting[method, backbone, split].add(config_hash)

    rows = []
    for method, backbone, split, config_hash in sorted(configurations):
        runs = _newest_per_seed(configurations[method, backbone, split, config_hash])
        values = [_metric_values(run, shot_rule) for run in runs]
        several_configurations = len(hashes_per_setting[method, backbone, split]) > 1
        rows.append({
            "method": method,
            "method_label": f"{method} [{config_hash[:6]}]" if several_configurations else method,
            "backbone": backbone,
            "split": split,
            "config_hash": config_hash,
            "seeds": len(runs),
            **{name: _mean_and_std([run_values[name] for run_values in values]) for name in METRICS},
        })
    return rows


def _check_format(fmt: str) -> None:
    if fmt not in TABLE_SUFFIXES:
        raise unknown_name("table format", fmt, TABLE_SUFFIXES)


def _number(value: Optional[float], missing: str) -> str:
    return missing if value is None else f"{value:.2f}"


def _mean_plus_minus_std(stat: Dict[str, Optional[float]]) -> str:
    if stat["mean"] is None or stat["std"] is None:
        return _number(stat["mean"], missing="-")
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _label_cells(row: dict) -> list:
    return [row["method_label"], row["backbone"], row["split"], str(row["seeds"])]


def _render_csv(rows: List[dict]) -> str:
    # Mean and std in columns of their own, so that spreadsheets read numbers; empty when missing.
    headers = list(LABEL_HEADERS)
    for name in METRICS:
        headers += [METRIC_HEADERS[name], f"{METRIC_HEADERS[name]} std"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        cells = _label_cells(row)
        for name in METRICS:
            cells += [_number(row[name]["mean"], missing=""), _number(row[name]["std"], missing="")]
        writer.writerow(cells)
    return buffer.getvalue()


def render_table(rows: List[dict], fmt: str) -> str:
    """The rows as 'md' (pipe table), 'csv' or 'latex' (booktabs) text, ending in a newline."""
    _check_format(fmt)
    if fmt == "csv":
        return _render_csv(rows)
    body = [_label_cells(row) + [_mean_plus_minus_std(row[name]) for name in METRICS] for row in rows]
    headers = LABEL_HEADERS + [METRIC_HEADERS[name] for name in METRICS]
    alignment = ["left"] * 3 + ["right"] * (len(headers) - 3)
    # disable_numparse: tabulate would otherwise rewrite '58.20' as '58.2'.
    text = tabulate(body, headers=headers, tablefmt=TABULATE_FORMATS[fmt], colalign=alignment, disable_numparse=True)
    return text + "\n"


def write_table(results_dir, dataset: str, text: str, fmt: str) -> Path:
    """Write a rendered table to <results_dir>/tables/<dataset>.md|.csv|.tex, atomically."""
    _check_format(fmt)
    path = Path(results_dir) / "tables" / f"{slug(dataset)}{TABLE_SUFFIXES[fmt]}"
    write_text_atomic(path, text)
    return path
