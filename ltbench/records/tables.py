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

from ltbench.core.atomic import write_text_atomic
from ltbench.core.errors import unknown_name
from ltbench.core.names import slug
from ltbench.metrics import GROUPS, SHOT_RULES, agnostic_distribution_names, grouped_accuracy
from ltbench.records.labels import distinguishing_labels
from ltbench.records.reported import reported_for

METRICS = (*GROUPS, "overall")
METRIC_HEADERS = {"many": "Many", "medium": "Medium", "few": "Few", "overall": "Overall"}
LABEL_HEADERS = ["Method", "Backbone", "Split", "Seeds"]
REPORTED_HEADER = "Reported"
REPORTED_SOURCE_HEADER = "Reported source"
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
    # Records older than shot_counts were grouped by their class_counts.
    counts = record.get("shot_counts") or record["class_counts"]
    return {**grouped_accuracy(per_class, counts, shot_rule), "overall": metrics["overall"]}


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

    Each row: method, method_label (where a method, backbone and split was run with several
    configurations, the options that tell them apart: ``method[key=value]``; records/labels.py),
    backbone, split, config_hash, seeds (count), and for each of
    many / medium / few / overall a {'mean', 'std'} over the seeds (std None for one seed).
    shot_rule: regroup classes under this rule instead of the rule each run recorded.
    """
    if shot_rule is not None and shot_rule not in SHOT_RULES:
        raise unknown_name("shot rule", shot_rule, SHOT_RULES)
    configurations = defaultdict(list)
    for record in records:
        if record["dataset"] == dataset:
            configurations[record["method"], record["backbone"], record["eval_split"], record["config_hash"],
                           tuned_study(record)].append(record)
    # Recipe rows of one setting are told apart by the options that differ (records/labels.py); a
    # tuned row by its label (tuned_label), beside the recipe's even with the same settings.
    configs_per_setting = defaultdict(dict)  # one config a hash stands for its configuration's settings
    for (method, backbone, split, config_hash, study), runs in configurations.items():
        if not study:
            configs_per_setting[method, backbone, split][config_hash] = runs[0].get("config") or {}
    labels = {setting: distinguishing_labels(setting[0], configs) for setting, configs in configs_per_setting.items()}

    rows = []
    for key in sorted(configurations):
        method, backbone, split, config_hash, study = key
        runs = _newest_per_seed(configurations[key])
        values = [_metric_values(run, shot_rule) for run in runs]
        label = method if study else labels[method, backbone, split][config_hash]
        rows.append({
            "method": method,
            "method_label": label + tuned_label(runs[0]),
            "tuned": runs[0].get("tuned"),
            "backbone": backbone,
            "split": split,
            "config_hash": config_hash,
            "seeds": len(runs),
            **{name: _mean_and_std([run_values[name] for run_values in values]) for name in METRICS},
            "records": runs,  # what add_test_dist / add_calibration / add_overall_ci read
        })
    return rows


def tuned_study(record: dict) -> str:
    """The tuning study a record's configuration came from ('' for a recipe run): a tuned row is
    its own row beside the recipe's, even where the study chose the recipe's settings."""
    tuned = record.get("tuned")
    return str(tuned.get("study", "")) if isinstance(tuned, dict) else ""


def tuned_label(record: dict) -> str:
    """' (tuned: N trials[, H device-h], objective on val)' for a tuned row; '' for a recipe row.
    A study that used the test split as val says so."""
    tuned = record.get("tuned")
    if not isinstance(tuned, dict):
        return ""
    budget = tuned.get("budget")
    parts = [f"{tuned.get('trials')} trials"] + ([f"{budget:g} device-h"] if budget else []) + \
        [f"{tuned.get('objective')} on {'TEST' if record.get('test_as_val') else 'val'}"]
    return f" (tuned: {', '.join(parts)})"


COST_COLUMNS = (("trained_parameters", "Trained params", 0, 1), ("device_hours", "Device-h", 4, 1),
                ("peak_device_bytes", "Peak dev. MiB", 0, 1 << 20), ("peak_host_bytes", "Peak host MiB", 0, 1 << 20))


def add_cost(rows: List[dict]) -> List[str]:
    """Trained parameters, device-hours (from scratch: reused work included) and peak device /
    host memory columns, means over the seeds (records' cost block). Returns 'cost' if some runs
    lack one (their cells: '-')."""
    missing = set()
    for row in rows:
        per_run = [run.get("cost") for run in row["records"]]
        if any(not isinstance(cost, dict) for cost in per_run):
            missing.add("cost")
        for key, header, digits, unit in COST_COLUMNS:
            values = [_cost_value(cost, key) for cost in per_run]
            values = [None if value is None else value / unit for value in values]
            row.setdefault("extra", {})[header] = {**_mean_and_std(values), "std": None, "digits": digits}
    return sorted(missing)


def _cost_value(cost, key: str) -> Optional[float]:
    if not isinstance(cost, dict):
        return None
    if key == "trained_parameters":
        parameters = cost.get("parameters") or {}
        return parameters.get("trained_from_scratch", parameters.get("trained"))
    if key == "device_hours":
        return (cost.get("from_scratch") or {}).get("device_hours")
    return cost.get(key)


def join_reported(rows: List[dict], entries: List[dict], dataset: str) -> List[dict]:
    """Add row['reported'] = {'overall', 'source'} to each row of `dataset`, from the published
    entries (ltbench.records.reported) of the same method, backbone label and eval split; both None where
    nothing was published. Changes the rows in place and returns them.
    """
    for row in rows:
        # One config hash per row: its first record's config stands for the row's settings.
        config = row["records"][0].get("config") if row.get("records") else None
        entry = reported_for(entries, dataset, row["method"], row["backbone"], row["split"], config)
        source = entry["source"] if entry else None
        if entry and entry.get("tte") == "unknown":
            source += ", TTE unknown"  # the source does not say whether the number is with test-time ensembling
        row["reported"] = {"overall": entry["overall"] if entry else None, "source": source}
    return rows


def _check_format(fmt: str) -> None:
    if fmt not in TABLE_SUFFIXES:
        raise unknown_name("table format", fmt, TABLE_SUFFIXES)


def _number(value: Optional[float], missing: str, digits: int = 2) -> str:
    return missing if value is None else f"{value:.{digits}f}"


def _mean_plus_minus_std(stat: Dict[str, Optional[float]]) -> str:
    digits = stat.get("digits", 2)
    if stat["mean"] is None or stat["std"] is None:
        text = _number(stat["mean"], missing="-", digits=digits)
    else:
        text = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    ci = stat.get("ci")
    return text if ci is None else f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _has_ci(rows: List[dict]) -> bool:
    return any("ci" in row["overall"] for row in rows)


def _extra_headers(rows: List[dict]) -> List[str]:
    headers = []
    for row in rows:
        for header in row.get("extra", {}):
            if header not in headers:
                headers.append(header)
    return headers


def _label_cells(row: dict) -> list:
    return [row["method_label"], row["backbone"], row["split"], str(row["seeds"])]


def _has_reported(rows: List[dict]) -> bool:
    """The Reported column is shown for rows that went through join_reported."""
    return any("reported" in row for row in rows)


def _published(value: float) -> str:
    # As published, to its last digit (67.2, not 67.20): more digits would claim a precision the
    # paper does not give.
    return str(float(value))


def _reported(row: dict) -> Dict[str, Optional[object]]:
    return row.get("reported") or {"overall": None, "source": None}


def _reported_cell(row: dict) -> str:
    reported = _reported(row)
    if reported["overall"] is None:
        return "-"
    return f"{_published(reported['overall'])} ({reported['source']})"


def _render_csv(rows: List[dict]) -> str:
    # Mean and std in columns of their own, so that spreadsheets read numbers; empty when missing.
    headers = list(LABEL_HEADERS)
    for name in METRICS:
        headers += [METRIC_HEADERS[name], f"{METRIC_HEADERS[name]} std"]
    with_ci = _has_ci(rows)
    if with_ci:
        headers += [f"{METRIC_HEADERS['overall']} CI low", f"{METRIC_HEADERS['overall']} CI high"]
    extra = _extra_headers(rows)
    for header in extra:
        headers += [header, f"{header} std"]
    with_reported = _has_reported(rows)
    if with_reported:
        headers += [REPORTED_HEADER, REPORTED_SOURCE_HEADER]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        cells = _label_cells(row)
        for name in METRICS:
            cells += [_number(row[name]["mean"], missing=""), _number(row[name]["std"], missing="")]
        if with_ci:
            ci = row["overall"].get("ci")
            cells += ["", ""] if ci is None else [f"{ci[0]:.2f}", f"{ci[1]:.2f}"]
        for header in extra:
            stat = row.get("extra", {}).get(header, {"mean": None, "std": None, "digits": 2})
            cells += [_number(stat["mean"], "", stat["digits"]), _number(stat["std"], "", stat["digits"])]
        if with_reported:
            reported = _reported(row)
            if reported["overall"] is None:
                cells += ["", ""]
            else:
                cells += [_published(reported["overall"]), reported["source"] or ""]
        writer.writerow(cells)
    return buffer.getvalue()


def render_table(rows: List[dict], fmt: str) -> str:
    """The rows as 'md' (pipe table), 'csv' or 'latex' (booktabs) text, ending in a newline.

    Rows that went through join_reported get a 'Reported' column after 'Overall' ('67.2 (A)', '-'
    where nothing was published); in csv, 'Reported' and 'Reported source' columns, empty where
    nothing was published.
    """
    _check_format(fmt)
    if fmt == "csv":
        return _render_csv(rows)
    with_reported = _has_reported(rows)
    extra = _extra_headers(rows)
    missing_extra = {"mean": None, "std": None}
    body = [
        _label_cells(row) + [_mean_plus_minus_std(row[name]) for name in METRICS]
        + [_mean_plus_minus_std(row.get("extra", {}).get(header, missing_extra)) for header in extra]
        + ([_reported_cell(row)] if with_reported else [])
        for row in rows
    ]
    overall_header = METRIC_HEADERS["overall"] + (" [95% CI]" if _has_ci(rows) else "")
    headers = (LABEL_HEADERS + [METRIC_HEADERS[name] for name in METRICS[:-1]] + [overall_header] + extra
               + ([REPORTED_HEADER] if with_reported else []))
    alignment = ["left"] * 3 + ["right"] * (len(headers) - 3)
    # disable_numparse: tabulate would otherwise rewrite '58.20' as '58.2'.
    text = tabulate(body, headers=headers, tablefmt=TABULATE_FORMATS[fmt], colalign=alignment, disable_numparse=True)
    return text + "\n"


TEST_DIST_CHOICES = (*agnostic_distribution_names(), "all")
CALIBRATION_COLUMNS = (("ece", "ECE", 2), ("mce", "MCE", 2), ("nll", "NLL", 3), ("brier", "Brier", 3))


def _add_column(row: dict, header: str, values: List[Optional[float]], digits: int = 2) -> None:
    row.setdefault("extra", {})[header] = {**_mean_and_std(values), "digits": digits}


def add_test_dist(rows: List[dict], name: str) -> List[str]:
    """Columns of test-agnostic accuracy (record metrics.test_agnostic): one distribution
    ('forward-50', 'uniform', ...) or 'all'. Returns the record fields some runs lack (their cells: '-')."""
    if name not in TEST_DIST_CHOICES:
        raise unknown_name("test distribution", name, TEST_DIST_CHOICES)
    names = agnostic_distribution_names() if name == "all" else [name]
    missing = set()
    for row in rows:
        per_run = [run["metrics"].get("test_agnostic") for run in row["records"]]
        if any(values is None for values in per_run):
            missing.add("metrics.test_agnostic")
        for distribution in names:
            _add_column(row, distribution, [None if values is None else values.get(distribution) for values in per_run])
    return sorted(missing)


def add_calibration(rows: List[dict]) -> List[str]:
    """ECE / MCE (percent), NLL, Brier columns, overall (record metrics.calibration)."""
    missing = set()
    for row in rows:
        per_run = [run["metrics"].get("calibration") for run in row["records"]]
        if any(values is None for values in per_run):
            missing.add("metrics.calibration")
        for key, header, digits in CALIBRATION_COLUMNS:
            _add_column(row, header, [None if values is None else values.get(key) for values in per_run], digits)
    return sorted(missing)


def add_overall_ci(rows: List[dict], record_paths: Dict[int, Path], resamples: int = 10_000, seed: int = 0,
                   level: float = 0.95, threads: int = 1) -> List[str]:
    """row['overall']['ci'] = [low, high]: within-class percentile bootstrap interval of the overall
    accuracy of single-seed rows, from the run's per-sample file. record_paths: id(record) -> its path.
    Runs from before per-sample files get none (returned as missing); a missing or changed file is an error.
    """
    from ltbench.records import stats
    from ltbench.records.per_sample import load_per_sample

    missing = set()
    for row in rows:
        if row["seeds"] != 1:
            continue
        [run] = row["records"]
        if not run.get("per_sample"):
            missing.add("per_sample")
            continue
        arrays = load_per_sample(record_paths[id(run)], run)
        labels = arrays["labels"].astype(np.int64)
        correct = (arrays["top_k"][:, 0] == labels).astype(np.float64)
        groups = np.full(int(labels.max()) + 1, "medium", dtype=object)  # only 'overall' is read
        replicates = stats.within_class_bootstrap(correct, labels, groups, resamples, seed, threads=threads)
        # Widened to the value the table shows where rounding (or skew) leaves it outside.
        row["overall"]["ci"] = stats.percentile_interval(replicates["overall"], level, row["overall"]["mean"])
    return sorted(missing)


def write_table(results_dir, dataset: str, text: str, fmt: str) -> Path:
    """Write a rendered table to <results_dir>/tables/<dataset>.md|.csv|.tex, atomically."""
    _check_format(fmt)
    path = Path(results_dir) / "tables" / f"{slug(dataset)}{TABLE_SUFFIXES[fmt]}"
    write_text_atomic(path, text)
    return path
