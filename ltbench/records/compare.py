"""`ltbench compare`: differences between runs with paired confidence intervals and tests, from
their per-sample predictions (ltbench.records.per_sample); the statistics are in ltbench.records.stats.

A side is one configuration: a record path (that run alone) or a leaderboard row selector
``method[:backbone][@config-hash-prefix]`` within a dataset (every seed of it, newest record per
seed). Every side after the first is compared with the first: B - A.
"""
import csv
import io
import json
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from tabulate import tabulate

from ltbench.core.errors import UserError
from ltbench.metrics import SHOT_RULES, shot_groups
from ltbench.records import stats
from ltbench.records.labels import distinguishing_labels
from ltbench.records.per_sample import load_per_sample
from ltbench.records.results import load_records, record_problem

STATISTIC_LABELS = {"overall": "Overall", "many": "Many", "medium": "Medium", "few": "Few",
                    "mean_per_class": "Mean per class"}
TABULATE_FORMATS = {"md": "pipe", "latex": "latex_booktabs"}


class Side:
    """One configuration's runs: [(record path, record)] sorted by seed."""

    def __init__(self, label: str, runs: List[Tuple[Path, dict]]):
        self.label, self.runs = label, runs

    @property
    def seeds(self) -> List[int]:
        return [record["seed"] for _, record in self.runs]


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable run record ({error})") from None
    problem = record_problem(record)
    if problem:
        raise UserError(f"{path}: not a usable run record ({problem})")
    return record


def _newest_per_seed(runs):
    newest = {}
    for path, record in runs:
        seed = record["seed"]
        if seed not in newest or record["created"] > newest[seed][1]["created"]:
            newest[seed] = (path, record)
    return [newest[seed] for seed in sorted(newest)]


def parse_selector(selector: str) -> Tuple[str, Optional[str], Optional[str]]:
    """'method[:backbone][@hash]' -> (method, backbone or None, hash prefix or None); backbones
    contain ':' themselves (RN50:openai), so everything after the first ':' is the backbone."""
    body, _, config_hash = selector.partition("@")
    method, _, backbone = body.partition(":")
    return method, backbone or None, config_hash or None


def resolve_side(argument: str, results_dir, dataset: Optional[str], loaded=None) -> Side:
    """A record path (an existing file, or any argument ending in .json) or a row selector."""
    path = Path(argument).expanduser()
    if argument.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"run record not found: {path}")
        record = _read_record(path)
        return Side(f"{record['method']}({record['backbone']}) seed {record['seed']}", [(path, record)])
    if dataset is None:
        raise UserError(f"'{argument}' is a row selector: pass --dataset NAME (or give record paths)")
    method, backbone, config_hash = parse_selector(argument)
    loaded = load_records(results_dir) if loaded is None else loaded
    matching = [(p, r) for p, r in loaded if r["dataset"] == dataset and r["method"] == method
                and (backbone is None or r["backbone"] == backbone)
                and (config_hash is None or r["config_hash"].startswith(config_hash))]
    configurations = sorted({(r["backbone"], r["eval_split"], r["config_hash"]) for _, r in matching})
    if not configurations:
        rows = sorted({f"{r['method']}:{r['backbone']}@{r['config_hash'][:6]}" for _, r in loaded if r["dataset"] == dataset})
        raise UserError(f"no run of '{argument}' on {dataset} under {Path(results_dir) / 'runs'} "
                        f"(rows there: {', '.join(rows) or 'none'})")
    if len(configurations) > 1:
        choices = ", ".join(f"{method}:{b}@{h[:6]} ({s})" for b, s, h in configurations)
        raise UserError(f"'{argument}' matches {len(configurations)} configurations on {dataset}: {choices}; "
                        "add :backbone and/or @config-hash")
    backbone, split, config_hash = configurations[0]
    runs = _newest_per_seed([(p, r) for p, r in matching if (r["backbone"], r["config_hash"]) == (backbone, config_hash)])
    # Named as the leaderboard names it: by the options that tell it from the method's other
    # configurations on this backbone and split (records/labels.py).
    siblings = {r["config_hash"]: r.get("config") or {} for _, r in loaded
                if (r["dataset"], r["method"], r["backbone"], r["eval_split"]) == (dataset, method, backbone, split)}
    return Side(f"{distinguishing_labels(method, siblings)[config_hash]}({backbone})", runs)


def _load(side: Side) -> List[dict]:
    return [load_per_sample(path, record) for path, record in side.runs]


def _check_same_split(sides: List[Side], loaded: List[List[dict]]) -> None:
    (first_path, _), first = sides[0].runs[0], loaded[0][0]
    for side, side_loaded in zip(sides, loaded):
        for (path, _), arrays in zip(side.runs, side_loaded):
            if arrays["fingerprint"] != first["fingerprint"] or not np.array_equal(arrays["labels"], first["labels"]):
                raise UserError(f"{path} and {first_path} were evaluated on different images (split content hash "
                                f"{arrays['fingerprint'][:12]}... vs {first['fingerprint'][:12]}...)")


def _pairs(a: Side, b: Side) -> List[Tuple[int, int]]:
    """Index pairs (run of a, run of b): one run each pairs as it is; otherwise by common seed."""
    if len(a.runs) == 1 and len(b.runs) == 1:
        return [(0, 0)]
    common = sorted(set(a.seeds) & set(b.seeds))
    if not common:
        raise UserError(f"{a.label} (seeds {a.seeds}) and {b.label} (seeds {b.seeds}) share no seed to pair")
    return [(a.seeds.index(seed), b.seeds.index(seed)) for seed in common]


def compare(sides: List[Side], resamples: int = 10_000, seed: int = 0, seed_test: str = "t",
            correction: str = "holm", level: float = 0.95, shot_rule: Optional[str] = None, threads: int = 1) -> dict:
    """Every side after the first against the first. JSON-ready dict: settings and 'comparisons'."""
    if len(sides) < 2:
        raise UserError("compare needs at least two runs or row selectors")
    if resamples < 1:
        raise UserError(f"--bootstrap {resamples}: give at least 1 resample")
    if seed_test not in stats.SEED_TESTS:
        raise UserError(f"unknown seed test '{seed_test}' (choose from: {', '.join(stats.SEED_TESTS)})")
    if correction not in stats.CORRECTIONS:
        raise UserError(f"unknown correction '{correction}' (choose from: {', '.join(stats.CORRECTIONS)})")
    loaded = [_load(side) for side in sides]
    _check_same_split(sides, loaded)
    baseline = sides[0].runs[0][1]
    rule = shot_rule or baseline["metrics"]["shot_rule"]
    if rule not in SHOT_RULES:
        raise UserError(f"unknown shot rule '{rule}'")
    groups = shot_groups(baseline.get("shot_counts") or baseline["class_counts"], rule)
    labels = loaded[0][0]["labels"].astype(np.int64)
    correct = [[arrays["top_k"][:, 0] == arrays["labels"] for arrays in side_loaded] for side_loaded in loaded]

    comparisons = []
    for index in range(1, len(sides)):
        a, b = sides[0], sides[index]
        pairs = _pairs(a, b)
        a_correct = [correct[0][i] for i, _ in pairs]
        b_correct = [correct[index][j] for _, j in pairs]
        differences = np.mean([cb.astype(np.float64) - ca for ca, cb in zip(a_correct, b_correct)], axis=0)
        replicates = stats.within_class_bootstrap(differences, labels, groups, resamples, seed, threads=threads)
        a_values = stats.point_statistics(np.mean(a_correct, axis=0), labels, groups)
        b_values = stats.point_statistics(np.mean(b_correct, axis=0), labels, groups)
        per_seed = [{name: None if value is None else value for name, value in
                     stats.point_statistics(cb.astype(np.float64) - ca, labels, groups).items()}
                    for ca, cb in zip(a_correct, b_correct)]
        mcnemar = [stats.mcnemar_exact(ca, cb) for ca, cb in zip(a_correct, b_correct)]
        entry = {
            "a": a.label, "b": b.label, "a_records": [str(a.runs[i][0]) for i, _ in pairs],
            "b_records": [str(b.runs[j][0]) for _, j in pairs],
            "seeds": [a.runs[i][1]["seed"] for i, _ in pairs] if len(pairs) > 1 else None,
            "paired_runs": len(pairs),
            "mcnemar": mcnemar,
            "statistics": {},
        }
        point_differences = stats.point_statistics(differences, labels, groups)
        for name in stats.STATISTICS:
            difference = point_differences[name]
            seed_differences = [row[name] for row in per_seed]
            entry["statistics"][name] = {
                "a": a_values[name], "b": b_values[name], "difference": difference,
                "ci": stats.percentile_interval(replicates[name], level, estimate=difference),
                "per_seed_differences": seed_differences if len(pairs) > 1 else None,
                "seed_test_p": stats.seed_test(seed_differences, seed_test) if len(pairs) > 1 else None,
            }
        overall = entry["statistics"]["overall"]
        # The p-value of the comparison: McNemar on one pair of runs; across seeds, the seed test.
        entry["p"] = mcnemar[0]["p"] if len(pairs) == 1 else overall["seed_test_p"]
        entry["test"] = "mcnemar-exact" if len(pairs) == 1 else f"{seed_test} over {len(pairs)} seeds"
        comparisons.append(entry)
    adjusted = stats.adjust_p_values([c["p"] for c in comparisons], correction if len(comparisons) > 1 else "none")
    for entry, p in zip(comparisons, adjusted):
        entry["p_adjusted"] = p
    return {"eval_split": baseline["eval_split"], "dataset": baseline["dataset"],
            "fingerprint": loaded[0][0]["fingerprint"], "num_images": int(len(labels)), "shot_rule": rule,
            "bootstrap": {"resamples": resamples, "seed": seed, "level": level,
                          "method": "paired percentile bootstrap, images resampled within class"},
            "seed_test": seed_test, "correction": correction if len(comparisons) > 1 else "none",
            "comparisons": comparisons}


def _number(value, digits=2, signed=False, missing="-"):
    if value is None:
        return missing
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value, missing="-"):
    if value is None:
        return missing
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def result_rows(result: dict, missing: str = "-") -> Tuple[List[str], List[List[str]]]:
    several = len(result["comparisons"]) > 1
    headers = ["A", "B", "Metric", "A value", "B value", "B - A", f"{int(100 * result['bootstrap']['level'])}% CI", "p", "Test"]
    if several:
        headers.append(f"p ({result['correction']})")
    rows = []
    for entry in result["comparisons"]:
        for name, statistic in entry["statistics"].items():
            overall = name == "overall"
            ci = statistic["ci"]
            p = entry["p"] if overall else statistic["seed_test_p"]
            row = [entry["a"], entry["b"], STATISTIC_LABELS[name], _number(statistic["a"], missing=missing),
                   _number(statistic["b"], missing=missing), _number(statistic["difference"], signed=True, missing=missing),
                   missing if ci is None else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]", _p(p, missing),
                   entry["test"] if p is not None else missing]
            if several:
                row.append(_p(entry["p_adjusted"], missing) if overall else missing)
            rows.append(row)
    return headers, rows


def describe(result: dict) -> str:
    """The one paragraph under the table that says what was computed."""
    boot = result["bootstrap"]
    lines = [f"{result['dataset']} {result['eval_split']} ({result['num_images']} images, shot rule {result['shot_rule']}). "
             f"B - A in accuracy points; CI: {boot['method']}, {boot['resamples']} resamples, seed {boot['seed']}. "
             "p on Overall: McNemar's exact test for one pair of runs; with several seeds, "
             f"a {'paired t-test' if result['seed_test'] == 't' else 'Wilcoxon signed-rank test'} on the per-seed differences."]
    if len(result["comparisons"]) > 1:
        lines.append(f"{len(result['comparisons'])} comparisons with A: p adjusted with the {result['correction']} "
                     "correction (intervals are not adjusted).")
    return " ".join(lines)


def render(result: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2) + "\n"
    headers, rows = result_rows(result, missing="" if fmt == "csv" else "-")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buffer.getvalue()
    text = tabulate(rows, headers=headers, tablefmt=TABULATE_FORMATS[fmt], disable_numparse=True,
                    colalign=["left"] * 3 + ["right"] * (len(headers) - 3))
    return f"{text}\n\n{describe(result)}\n"
