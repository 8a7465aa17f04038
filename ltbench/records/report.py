"""``ltbench report``: a static, self-contained site from the run records.

<out>/index.html lists the datasets; <out>/<dataset>/index.html holds the leaderboard (sortable by
any column), the Reported column and the figures of ltbench.records.plots embedded as SVG data;
<out>/<dataset>/runs/<run id>.html holds one run's config, versions, split hashes, timings,
metrics, details and per-class table (beyond MAX_CLASS_ROWS classes, iNaturalist's 8142: a table
of CLASS_TABLE_BINS bins of classes by training images, and every class in <run id>.per-class.csv).
Plain HTML and CSS and a few lines of JavaScript, every link relative, nothing fetched: it opens
offline or can be published as it is.

Pages hold only what the records hold (no time of writing), in a fixed order, so the same
records give the same bytes and a committed report diffs cleanly.
"""
import base64
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

import ltbench
from ltbench.core.atomic import write_text_atomic
from ltbench.core.errors import UserError
from ltbench.core.names import slug
from ltbench.metrics import GROUPS, shot_groups
from ltbench.records import figure_data, plots
from ltbench.records.report_templates import SCRIPT, STYLE, TEMPLATES
from ltbench.records.selection import row_name
from ltbench.records.tables import METRIC_HEADERS, join_reported

FIGURE_ALTS = {
    "per-class": "per-class top-1 accuracy against training images per class",
    "groups": "many / medium / few / overall accuracy with 95% bootstrap intervals",
    "calibration": "reliability diagram with the ECE of each run",
    "test-dist": "accuracy from forward-50 to backward-50 test label distributions",
    "cost": "overall accuracy against device-hours and trained parameters, Pareto front marked",
}


def _environment():
    import jinja2

    environment = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.globals.update(style=STYLE, script=SCRIPT, version=ltbench.__version__)
    return environment


def _number(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _sort(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def _cell(text, sort="", num=False) -> dict:
    return {"text": text, "sort": sort, "num": num}


def _stat_cell(stat: dict) -> dict:
    text = _number(stat["mean"]) if stat["std"] is None else f"{stat['mean']:.2f} \u00b1 {stat['std']:.2f}"
    return _cell(text, _sort(stat["mean"]), num=True)


def _ece(row: dict) -> Optional[float]:
    values = [(run["metrics"].get("calibration") or {}).get("ece") for run in row["records"]]
    return None if any(value is None for value in values) else float(np.mean(values))


def run_page_name(record: dict) -> str:
    return f"{slug(record['run_id'])}.html"


def _leaderboard(rows: List[dict], resamples: int, seed: int, shot_rule: Optional[str], with_reported: bool):
    headers = [{"label": label, "num": num} for label, num in
               (("Method", False), ("Backbone", False), ("Split", False), ("Seeds", True))]
    headers += [{"label": METRIC_HEADERS[name], "num": True} for name in (*GROUPS, "overall")]
    headers += [{"label": "Overall 95% CI", "num": True}, {"label": "ECE", "num": True}]
    headers += [{"label": "Reported", "num": True}] if with_reported else []
    headers += [{"label": "Runs", "num": False}]
    table = []
    for row in rows:
        cells = [_cell(row["method_label"]), _cell(row["backbone"]), _cell(row["split"]),
                 _cell(str(row["seeds"]), str(row["seeds"]), num=True)]
        cells += [_stat_cell(row[name]) for name in (*GROUPS, "overall")]
        ci = figure_data.group_accuracy(row, resamples, seed, shot_rule=shot_rule)["overall"]["ci"]
        cells.append(_cell("-" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]", _sort(ci and ci[0]), num=True))
        ece = _ece(row)
        cells.append(_cell(_number(ece), _sort(ece), num=True))
        if with_reported:
            reported = row["reported"]
            text = "-" if reported["overall"] is None else f"{float(reported['overall'])} ({reported['source']})"
            cells.append(_cell(text, _sort(reported["overall"]), num=True))
        runs = [{"seed": record["seed"], "href": f"runs/{run_page_name(record)}"} for record in row["records"]]
        table.append({"cells": cells, "runs": runs, "name": row_name(row)})
    return headers, table


def _figures(rows: List[dict], dataset: str, rule: str, resamples: int, seed: int) -> List[dict]:
    figures = []
    for kind in plots.KINDS:
        entry = {"kind": kind, "alt": f"{dataset}: {FIGURE_ALTS[kind]}", "src": None, "missing": None}
        try:
            figure = plots.draw(kind, rows, dataset, rule, resamples=resamples, seed=seed)
        except UserError as error:  # e.g. no run with a per-sample file for the reliability diagram
            entry["missing"] = str(error)
        else:
            svg = plots.figure_bytes(figure, "svg")
            entry["src"] = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
        figures.append(entry)
    return figures


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _pairs(mapping: dict) -> List[tuple]:
    return [(key, "-" if value is None else value) for key, value in sorted((mapping or {}).items())]


def _run_sections(record: dict) -> List[dict]:
    metrics = record["metrics"]
    summary = [(label, _number(metrics.get(key))) for key, label in
               (("overall", "Overall top-1"), ("many", "Many"), ("medium", "Medium"), ("few", "Few"),
                ("mean_per_class", "Mean per class"), ("top5", "Top-5"), ("macro_f1", "Macro-F1"))]
    summary += [("Shot rule", metrics["shot_rule"]), ("Images", metrics.get("num_images", "-"))]
    calibration = metrics.get("calibration") or {}
    summary += [(label, _number(calibration.get(key), digits)) for key, label, digits in
                (("ece", "ECE (%)", 2), ("mce", "MCE (%)", 2), ("nll", "NLL", 3), ("brier", "Brier", 3))]
    run = [("Method", record["method"]), ("Dataset", record["dataset"]), ("Backbone", record["backbone"]),
           ("Seed", record["seed"]), ("Eval split", record["eval_split"]), ("Config hash", record["config_hash"]),
           ("Device", record.get("device", "-")), ("Run id", record["run_id"])]
    sections = [{"title": "Metrics", "pairs": summary}, {"title": "Run", "pairs": run},
                {"title": "Versions", "pairs": _pairs(record.get("versions"))},
                {"title": "Split hashes", "pairs": _pairs(record.get("split_files"))},
                {"title": "Timings (s)", "pairs": _pairs(record.get("timings"))}]
    agnostic = metrics.get("test_agnostic")
    if agnostic:
        sections.append({"title": "Test-agnostic accuracy",
                         "pairs": [(name, _number(agnostic.get(name))) for name in agnostic]})
    for split, extra in sorted((record.get("extra_metrics") or {}).items()):
        sections.append({"title": f"Also evaluated: {split}", "pairs": [
            (label, _number(extra.get(key))) for key, label in
            (("overall", "Overall top-1"), ("many", "Many"), ("medium", "Medium"), ("few", "Few"))]})
    sections.append({"title": "Details", "text": _json(record.get("details") or {})})
    sections.append({"title": "Config", "text": _json(record.get("config") or {})})
    return sections


MAX_CLASS_ROWS = 1000  # [ours] a run page lists every class up to this many (ImageNet-LT's 1000)
CLASS_TABLE_BINS = 50  # [ours] beyond, bins of classes by training images, every class in a CSV file


def _per_class_rows(record: dict) -> List[dict]:
    """One row per class; its name where the record keeps the class names (records from before
    them show the index alone)."""
    counts = record["class_counts"]
    class_groups = shot_groups(record.get("shot_counts") or counts, record["metrics"]["shot_rule"])
    names = record.get("class_names")
    if not isinstance(names, list) or len(names) != len(counts):
        names = None
    return [{"index": index, "name": None if names is None else names[index], "count": count,
             "group": str(class_groups[index]), "accuracy": _number(value), "sort": _sort(value)}
            for index, (count, value) in enumerate(zip(counts, record["metrics"]["per_class_accuracy"]))]


def per_class_csv(record: dict) -> str:
    """Every class of a run: index, name (where the record keeps the class names), training images,
    shot group, top-1 (empty: no evaluation images)."""
    import csv
    import io

    rows = _per_class_rows(record)
    named = bool(rows) and rows[0]["name"] is not None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # quotes a name with a comma
    writer.writerow(["class"] + (["name"] if named else []) + ["training_images", "group", "top1"])
    for row in rows:
        writer.writerow([row["index"]] + ([row["name"]] if named else [])
                        + [row["count"], row["group"], "" if row["accuracy"] == "-" else row["accuracy"]])
    return out.getvalue()


def _per_class_bins(record: dict) -> List[dict]:
    """Classes sorted by training images (most first, ties by index) in CLASS_TABLE_BINS bins of
    consecutive classes: their ranks, training images, groups and the mean / min / max top-1 of
    those with evaluation images. What a run page shows instead of thousands of rows."""
    counts = np.asarray(record["class_counts"], dtype=np.int64)
    accuracy = np.array([np.nan if v is None else v for v in record["metrics"]["per_class_accuracy"]], dtype=np.float64)
    class_groups = shot_groups(record.get("shot_counts") or record["class_counts"], record["metrics"]["shot_rule"])
    order = np.lexsort((np.arange(len(counts)), -counts))
    rows = []
    for part in figure_data.class_bins(len(order), CLASS_TABLE_BINS):
        members = order[part]
        measured = accuracy[members][~np.isnan(accuracy[members])]
        mean = float(measured.mean()) if len(measured) else None
        rows.append({"ranks": f"{part.start + 1}-{part.stop}", "classes": len(members),
                     "images": f"{counts[members].max()}-{counts[members].min()}",
                     "groups": ", ".join(name for name in GROUPS if (class_groups[members] == name).any()),
                     "measured": len(measured), "mean": _number(mean), "sort": _sort(mean),
                     "low": _number(float(measured.min()) if len(measured) else None),
                     "high": _number(float(measured.max()) if len(measured) else None)})
    return rows


def per_class_csv_name(record: dict) -> str:
    return f"{slug(record['run_id'])}.per-class.csv"


def _relative(path: Path, results_dir) -> str:
    try:
        return Path(path).resolve().relative_to(Path(results_dir).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def write_report(rows_by_dataset: Dict[str, List[dict]], out_dir, results_dir, reported: Optional[List[dict]],
                 resamples: int = 10_000, seed: int = 0, shot_rule: Optional[str] = None) -> List[Path]:
    """Write the site for {dataset: rows (ltbench.records.selection.select_rows)} under out_dir;
    reported: published entries for the Reported column (None: no column). Returns the pages."""
    environment = _environment()
    out_dir = Path(out_dir)
    written, summary = [], []
    for dataset, rows in rows_by_dataset.items():
        folder = out_dir / slug(dataset)
        if reported is not None:
            join_reported(rows, reported, dataset)
        rule = shot_rule or rows[0]["records"][0]["metrics"]["shot_rule"]
        headers, table = _leaderboard(rows, resamples, seed, shot_rule, reported is not None)
        page = environment.get_template("dataset.html").render(
            title=dataset, crumbs=[("report", "../index.html")], dataset=dataset, headers=headers, rows=table,
            figures=_figures(rows, dataset, rule, resamples, seed), resamples=resamples, seed=seed,
            description=f"{len(rows)} configurations, {sum(row['seeds'] for row in rows)} runs; "
                        f"shot groups by the {rule} rule.")
        write_text_atomic(folder / "index.html", page)
        written.append(folder / "index.html")
        for row in rows:
            for path, record in zip(row["paths"], row["records"]):
                target = folder / "runs" / run_page_name(record)
                many_classes = len(record["class_counts"]) > MAX_CLASS_ROWS
                if many_classes:  # a page of 8142 rows a run is unreadable: bins, and every class in a CSV file
                    csv_file = folder / "runs" / per_class_csv_name(record)
                    write_text_atomic(csv_file, per_class_csv(record))
                    written.append(csv_file)
                write_text_atomic(target, environment.get_template("run.html").render(
                    title=record["run_id"], crumbs=[("report", "../../index.html"), (dataset, "../index.html")],
                    record=record, record_file=_relative(path, results_dir), sections=_run_sections(record),
                    classes=[] if many_classes else _per_class_rows(record),
                    class_bins=_per_class_bins(record) if many_classes else [],
                    class_csv=per_class_csv_name(record) if many_classes else None))
                written.append(target)
        best = max(rows, key=lambda row: row["overall"]["mean"])
        summary.append({"name": dataset, "href": f"{slug(dataset)}/index.html", "rows": len(rows),
                        "runs": sum(row["seeds"] for row in rows), "best": best["method_label"],
                        "best_overall": _number(best["overall"]["mean"]), "best_sort": _sort(best["overall"]["mean"])})
    write_text_atomic(out_dir / "index.html", environment.get_template("index.html").render(
        title="ltbench report", crumbs=[], datasets=summary))
    written.append(out_dir / "index.html")
    return written
