"""The numbers behind each figure of ``ltbench plot`` and ``ltbench report``, from leaderboard rows
(ltbench.records.selection): plain numpy, no drawing, so that they are tested on their own.

A row stands for one configuration; with several seeds, per-class and test-distribution values
are means over the seeds, the group bars' intervals come from the seeds' mean per-image
correctness (as ``ltbench compare`` does), and the reliability diagram pools the seeds' images.
"""
from typing import Dict, List, Optional

import numpy as np

from ltbench.core.errors import UserError
from ltbench.metrics import (
    ECE_BINS,
    GROUPS,
    SHOT_RULES,
    agnostic_accuracy,
    agnostic_distribution_names,
    calibration_scores,
    shot_groups,
)
from ltbench.records import stats
from ltbench.records.per_sample import FIELDS, load_per_sample

BAR_STATISTICS = (*GROUPS, "overall")


def _rule(row: dict, shot_rule: Optional[str]) -> str:
    return shot_rule or row["records"][0]["metrics"]["shot_rule"]


def shot_boundaries(rule: str) -> Dict[str, float]:
    """Training-image counts between the groups, for drawing: {'many': between the largest medium
    and the smallest many count, 'few': between the largest few and the smallest medium count}."""
    is_many, is_few = SHOT_RULES[rule]
    smallest_many = next(n for n in range(100_000) if is_many(n))
    largest_few = max(n for n in range(smallest_many) if is_few(n))
    return {"many": smallest_many - 0.5, "few": largest_few + 0.5}


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` neighbours (fewer at the ends), ignoring NaN."""
    values = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(present)])
    index = np.arange(len(values))
    low = np.clip(index - window // 2, 0, len(values))
    high = np.clip(index + (window - 1) // 2 + 1, 0, len(values))
    taken = counts[high] - counts[low]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(taken > 0, (sums[high] - sums[low]) / np.maximum(taken, 1), np.nan)


def default_window(num_classes: int) -> int:
    """Smoothing window of the per-class curve: a twentieth of the classes, at least 3 [ours]."""
    return int(min(num_classes, max(3, num_classes // 20)))


def per_class(row: dict, window: Optional[int] = None) -> dict:
    """Classes sorted by training images, most first (ties by class index): 'counts', 'accuracy'
    (mean over seeds; NaN for a class without evaluation images), 'smoothed' (moving average over
    `window` classes in that order), 'classes' (their indices) and 'window'."""
    counts = np.asarray(row["records"][0]["class_counts"], dtype=np.int64)
    accuracy = np.array([[np.nan if v is None else v for v in run["metrics"]["per_class_accuracy"]]
                         for run in row["records"]], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        present = ~np.isnan(accuracy)
        mean = np.where(present.any(axis=0), np.nansum(accuracy, axis=0) / np.maximum(present.sum(axis=0), 1), np.nan)
    order = np.lexsort((np.arange(len(counts)), -counts))
    window = default_window(len(counts)) if window is None else window
    return {"classes": order, "counts": counts[order], "accuracy": mean[order],
            "smoothed": moving_average(mean[order], window), "window": window}


MAX_CLASS_POINTS = 400  # [ours] per-class figures draw every class up to this many, bins beyond
CLASS_BINS = 200  # [ours] bins of a per-class figure with more classes (iNaturalist: about 41 classes a bin)


def class_bins(num_classes: int, bins: int = CLASS_BINS) -> list:
    """Consecutive slices of classes (in the order given: most training images first), as equal in
    size as can be: every class in one bin, none empty."""
    bins = max(1, min(bins, num_classes))
    edges = np.linspace(0, num_classes, bins + 1).round().astype(int)
    return [slice(low, high) for low, high in zip(edges[:-1], edges[1:]) if high > low]


def binned_per_class(data: dict, bins: int = CLASS_BINS) -> dict:
    """per_class's classes (counts > 0, most training images first) in `bins` bins of consecutive
    classes: 'counts' the median training images of each bin's classes, 'accuracy' the mean over
    the bin's classes with evaluation images (NaN if none), 'smoothed' the moving average at the
    bin's middle class, 'sizes' classes per bin. The rule a per-class figure states when it bins."""
    shown = data["counts"] > 0
    counts, accuracy, smoothed = data["counts"][shown], data["accuracy"][shown], data["smoothed"][shown]
    slices = class_bins(len(counts), bins)
    with np.errstate(invalid="ignore"):
        means = [np.nanmean(accuracy[part]) if (~np.isnan(accuracy[part])).any() else np.nan for part in slices]
    return {"counts": np.array([np.median(counts[part]) for part in slices]), "accuracy": np.array(means),
            "smoothed": np.array([smoothed[(part.start + part.stop - 1) // 2] for part in slices]),
            "sizes": np.array([part.stop - part.start for part in slices])}


def _loaded(row: dict) -> List[dict]:
    arrays = [load_per_sample(path, record) for path, record in zip(row["paths"], row["records"])]
    for other, path in zip(arrays[1:], row["paths"][1:]):
        if not np.array_equal(other["labels"], arrays[0]["labels"]):
            raise UserError(f"{path} and {row['paths'][0]} were evaluated on different images")
    return arrays


def has_per_sample(row: dict) -> bool:
    return all(run.get("per_sample") for run in row["records"])


def group_accuracy(row: dict, resamples: int = 10_000, seed: int = 0, level: float = 0.95,
           shot_rule: Optional[str] = None) -> Dict[str, dict]:
    """{'many' | 'medium' | 'few' | 'overall': {'value', 'ci'}}: the row's accuracy and the within-class
    percentile bootstrap interval of ``ltbench compare`` (ci None for runs from before per-sample files,
    value and ci None for a group without classes)."""
    if not has_per_sample(row):
        return {name: {"value": row[name]["mean"], "ci": None} for name in BAR_STATISTICS}
    rule = _rule(row, shot_rule)
    # `ltbench report` asks twice per row (the leaderboard's interval, the group figure): the same
    # per-sample files (by their recorded SHA-256) and settings give the same answer, bootstrapped once.
    key = (tuple((str(path), run["per_sample"]["sha256"]) for path, run in zip(row["paths"], row["records"])),
           resamples, seed, level, rule)
    if key not in _GROUP_ACCURACY:
        if len(_GROUP_ACCURACY) >= 64:
            _GROUP_ACCURACY.pop(next(iter(_GROUP_ACCURACY)))
        _GROUP_ACCURACY[key] = _group_accuracy(row, resamples, seed, level, rule)
    return {name: dict(entry) for name, entry in _GROUP_ACCURACY[key].items()}


_GROUP_ACCURACY: Dict[tuple, dict] = {}


def _group_accuracy(row: dict, resamples: int, seed: int, level: float, rule: str) -> Dict[str, dict]:
    runs = _loaded(row)
    record = row["records"][0]
    class_groups = shot_groups(record.get("shot_counts") or record["class_counts"], rule)
    labels = runs[0]["labels"].astype(np.int64)
    correct = np.mean([(run["top_k"][:, 0] == run["labels"]).astype(np.float64) for run in runs], axis=0)
    values = stats.point_statistics(correct, labels, class_groups)
    replicates = stats.within_class_bootstrap(correct, labels, class_groups, resamples, seed)
    return {name: {"value": values[name], "ci": stats.percentile_interval(replicates[name], level, values[name])}
            for name in BAR_STATISTICS}


def reliability(row: dict, bins: int = ECE_BINS) -> Optional[dict]:
    """Reliability diagram of the row's images (all seeds pooled): per equal-width confidence bin
    ((b/bins, (b+1)/bins], as metrics.calibration_scores bins them) 'confidence' and 'accuracy'
    (percent; NaN for an empty bin) and 'count'; 'ece' of the pooled images; 'edges'. None for
    runs from before per-sample files."""
    if not has_per_sample(row):
        return None
    runs = _loaded(row)
    pooled = {field: np.concatenate([run[field] for run in runs]) for field in FIELDS}
    confidence = pooled["top_prob"][:, 0].astype(np.float64)
    correct = (pooled["top_k"][:, 0] == pooled["labels"]).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = 100.0 * np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = 100.0 * np.bincount(index, weights=correct, minlength=bins) / count
    return {"confidence": mean_confidence, "accuracy": accuracy, "count": count,
            "edges": np.linspace(0.0, 100.0, bins + 1), "ece": calibration_scores(pooled, bins)["ece"]}


def accuracy_by_test_distribution(row: dict) -> dict:
    """Accuracy from forward-50 to backward-50: 'names', 'mean' and 'std' over seeds (NaN where
    undefined). Records from before metrics.test_agnostic: computed from their per-class accuracy."""
    names = agnostic_distribution_names()
    per_run = []
    for run in row["records"]:
        values = run["metrics"].get("test_agnostic") or agnostic_accuracy(run["metrics"]["per_class_accuracy"],
                                                                         run["class_counts"])
        per_run.append([np.nan if values.get(name) is None else values[name] for name in names])
    values = np.array(per_run, dtype=np.float64)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(len(names), np.nan)
    return {"names": names, "mean": values.mean(axis=0), "std": std}


def _mean_of(values: List[Optional[float]]) -> Optional[float]:
    present = [float(value) for value in values if value is not None]
    return float(np.mean(present)) if present else None


def run_cost(record: dict) -> Optional[dict]:
    """{trained_parameters, device_hours, peak_device_bytes, peak_host_bytes} of one run from its
    cost block (engine/cost.py; from scratch: work reused from the cache or a stage store
    included), or None for a record from before costs were kept."""
    cost = record.get("cost")
    if not isinstance(cost, dict):
        return None
    parameters = cost.get("parameters") or {}
    scratch = cost.get("from_scratch") or {}
    return {"trained_parameters": parameters.get("trained_from_scratch", parameters.get("trained")),
            "device_hours": scratch.get("device_hours"),
            "peak_device_bytes": cost.get("peak_device_bytes"),
            "peak_host_bytes": cost.get("peak_host_bytes")}


def row_cost(row: dict) -> Optional[dict]:
    """A leaderboard row's cost: the mean over its seeds of run_cost (None where no run has one)."""
    costs = [run_cost(record) for record in row.get("records", [])]
    costs = [cost for cost in costs if cost is not None]
    if not costs:
        return None
    return {key: _mean_of([cost[key] for cost in costs]) for key in costs[0]}


def pareto_front(points: List[tuple]) -> List[int]:
    """Indices of the (cost, accuracy) points no other point beats (no more cost and more accuracy,
    or less cost and no less accuracy), in order of cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front
