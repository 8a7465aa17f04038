"""The figures of ``ltbench plot`` and ``ltbench report``, drawn with matplotlib's object API
(matplotlib.figure.Figure on the Agg canvas: no display, no pyplot global state).

Every figure carries its own title, axis labels and legend. Runs are told apart by an Okabe-Ito
colour (readable by colour-blind readers) and, for greyscale prints, a marker shape, a line style
and a bar hatch. The bytes depend only on the records: fixed size and dpi, no date in the file,
SVG ids from a fixed salt (``figure_bytes``).
"""
import io
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from ltbench.core.atomic import atomic_write
from ltbench.core.errors import UserError
from ltbench.core.names import slug
from ltbench.metrics import ECE_BINS, GROUPS, shot_groups
from ltbench.records import figure_data
from ltbench.records.selection import row_labels

# Okabe & Ito (2008), ordered so that neighbours differ in lightness too; yellow last (weak on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINE_STYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
FORMATS = ("png", "svg")
KINDS = ("per-class", "groups", "calibration", "test-dist", "cost")
FIGURE_SIZE = (7.0, 4.5)  # inches
DPI = 100
# No date in SVG files, fixed ids (matplotlib derives them from this salt), text kept as text.
RC = {"svg.hashsalt": "ltbench", "svg.fonttype": "none", "font.size": 9}
METADATA = {"svg": {"Date": None}, "png": {}}
GROUP_LABELS = {"many": "Many", "medium": "Medium", "few": "Few", "overall": "Overall"}


def style(index: int) -> dict:
    return {"color": PALETTE[index % len(PALETTE)], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINE_STYLES[index % len(LINE_STYLES)], "hatch": HATCHES[index % len(HATCHES)]}


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _subtitle(rows: List[dict], rule: str) -> str:
    splits = ", ".join(sorted({row["split"] for row in rows}))
    return f"{splits} split, shot groups by the {rule} rule"


def _classes(count: int) -> str:
    return f"{count} class" if count == 1 else f"{count} classes"


def _legend_handle(index: int, label: str, line: bool = True):
    from matplotlib.lines import Line2D

    s = style(index)
    return Line2D([], [], color=s["color"], marker=s["marker"], linestyle=s["linestyle"] if line else "none",
                  label=label)


def per_class_figure(rows: List[dict], dataset: str, rule: str, window: Optional[int] = None):
    """Per-class top-1 against the class's training images (log x): each class a point, and a moving
    average over classes sorted by training images; the many / medium / few boundaries drawn.

    With more than figure_data.MAX_CLASS_POINTS classes (iNaturalist's 8142), the classes sorted by
    training images go into CLASS_BINS bins of consecutive classes (figure_data.binned_per_class):
    a point is a bin's mean accuracy at its median training count and the line the moving average
    at each bin's middle class, so the figure stays readable and its file small; the title says so."""
    from matplotlib.transforms import blended_transform_factory

    figure, axes = _figure()
    handles, hidden, binned = [], 0, None
    for index, (row, label) in enumerate(zip(rows, row_labels(rows))):
        data = figure_data.per_class(row, window)
        shown = data["counts"] > 0  # a class without training images has no place on a log axis
        hidden = max(hidden, int((~shown).sum()))
        if shown.sum() > figure_data.MAX_CLASS_POINTS:
            bins = figure_data.binned_per_class(data)
            binned = (int(shown.sum()), len(bins["sizes"]), int(bins["sizes"].min()), int(bins["sizes"].max()))
            data, shown = bins, np.ones(len(bins["counts"]), dtype=bool)
        s = style(index)
        axes.scatter(data["counts"][shown], data["accuracy"][shown], color=s["color"], marker=s["marker"],
                     s=22, alpha=0.55, linewidths=0)
        axes.plot(data["counts"][shown], data["smoothed"][shown], color=s["color"], linestyle=s["linestyle"],
                  linewidth=1.8)
        handles.append(_legend_handle(index, label))
    axes.set_xscale("log")
    axes.set_ylim(-3, 103)
    boundaries = figure_data.shot_boundaries(rule)
    top = blended_transform_factory(axes.transData, axes.transAxes)
    for x in boundaries.values():
        axes.axvline(x, color="0.45", linestyle=":", linewidth=1)
    axes.text(boundaries["few"], 0.985, "few \u2190 ", transform=top, ha="right", va="top", color="0.3")
    axes.text(boundaries["many"], 0.985, " \u2192 many", transform=top, ha="left", va="top", color="0.3")
    axes.text(float(np.sqrt(boundaries["few"] * boundaries["many"])), 0.985, "medium", transform=top,
              ha="center", va="top", color="0.3")
    note = f"; {hidden} classes without training images not shown" if hidden else ""
    window_used = figure_data.per_class(rows[0], window)["window"]
    if binned:
        classes, bins, smallest, largest = binned
        size = f"{smallest}" if smallest == largest else f"{smallest}-{largest}"
        hidden_line = f"\n({hidden} classes without training images not shown)" if hidden else ""
        axes.set_title(f"{dataset}: per-class top-1 accuracy against training images\n"
                       f"({_subtitle(rows, rule)}; lines: moving average over {window_used} classes)\n"
                       f"points: {classes} classes by training images in {bins} bins of {size}, "
                       f"mean at the median count{hidden_line}", fontsize=9)
    else:
        axes.set_title(f"{dataset}: per-class top-1 accuracy against training images\n"
                       f"({_subtitle(rows, rule)}; points: classes, lines: moving average over {window_used} "
                       f"classes{note})", fontsize=9)
    axes.set_xlabel("training images of the class (log scale)")
    axes.set_ylabel("top-1 accuracy of the class (%)")
    axes.grid(True, which="major", color="0.9", linewidth=0.6)
    axes.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
    return figure


def bar_errors(values: List[dict]) -> np.ndarray:
    """[2, bars] error-bar lengths below and above each bar from its {'value', 'ci'}: 0 for a bar
    without a value or an interval (an empty group, a run without per-sample file), and never
    negative (an interval from before intervals contained their estimate, or a NaN bound, draws
    no bar on that side rather than failing the figure)."""
    error = np.zeros((2, len(values)))
    for index, entry in enumerate(values):
        value, ci = entry["value"], entry["ci"]
        if value is None or ci is None:
            continue
        error[:, index] = [value - ci[0], ci[1] - value]
    return np.clip(np.nan_to_num(error, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def groups_figure(rows: List[dict], dataset: str, rule: str, resamples: int = 10_000, seed: int = 0):
    """Grouped bars of many / medium / few / overall with 95% within-class bootstrap intervals."""
    figure, axes = _figure()
    statistics = figure_data.BAR_STATISTICS
    width = 0.8 / len(rows)
    sizes = dict(zip(*np.unique(shot_groups(rows[0]["records"][0].get("shot_counts")
                                            or rows[0]["records"][0]["class_counts"], rule), return_counts=True)))
    without_ci = []
    for index, (row, label) in enumerate(zip(rows, row_labels(rows))):
        values = figure_data.group_accuracy(row, resamples, seed, shot_rule=rule)
        s = style(index)
        x = np.arange(len(statistics)) - 0.4 + width * (index + 0.5)
        heights = np.array([np.nan if values[name]["value"] is None else values[name]["value"] for name in statistics])
        error = bar_errors([values[name] for name in statistics])
        if all(values[name]["ci"] is None for name in statistics):
            without_ci.append(label)
        axes.bar(x, np.nan_to_num(heights), width * 0.92, color=s["color"], hatch=s["hatch"], edgecolor="black",
                 linewidth=0.6, label=label, yerr=error, capsize=3, error_kw={"elinewidth": 0.9, "ecolor": "black"})
        if len(rows) <= 4:
            for xi, height, top in zip(x, heights, heights + error[1]):
                if not np.isnan(height):
                    axes.text(xi, top + 1, f"{height:.1f}", ha="center", va="bottom", fontsize=7)
    axes.set_xticks(np.arange(len(statistics)))
    axes.set_xticklabels([f"{GROUP_LABELS[name]}\n({_classes(sizes.get(name, 0))})" if name in GROUPS
                          else GROUP_LABELS[name] for name in statistics])
    axes.set_ylim(0, 119)  # room for the legend above 100
    axes.set_ylabel("top-1 accuracy (%)")
    note = f"; no interval for {', '.join(without_ci)} (no per-sample file)" if without_ci else ""
    axes.set_title(f"{dataset}: accuracy by shot group ({_subtitle(rows, rule)})\nerror bars: 95% bootstrap "
                   f"interval, images resampled within class, {resamples} resamples{note}", fontsize=9)
    axes.grid(True, axis="y", color="0.9", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.legend(loc="upper right", fontsize=8, framealpha=0.9, ncol=min(len(rows), 4))
    return figure


def calibration_figure(rows: List[dict], dataset: str, rule: str, bins: int = ECE_BINS):
    """Reliability diagram: accuracy against mean confidence per confidence bin, ECE in the legend."""
    figure, axes = _figure()
    axes.plot([0, 100], [0, 100], color="0.5", linestyle="--", linewidth=1, label="perfect calibration")
    skipped = []
    for index, (row, label) in enumerate(zip(rows, row_labels(rows))):
        data = figure_data.reliability(row, bins)
        if data is None:
            skipped.append(label)
            continue
        filled = data["count"] > 0
        s = style(index)
        axes.plot(data["confidence"][filled], data["accuracy"][filled], color=s["color"], marker=s["marker"],
                  linestyle=s["linestyle"], linewidth=1.5, markersize=5, label=f"{label}: ECE {data['ece']:.2f}")
    if len(skipped) == len(rows):
        raise UserError(f"no run of {dataset} shown has a per-sample file, which a reliability diagram needs; "
                        "rerun them with this ltbench")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_aspect("equal", adjustable="box")
    axes.set_xlabel("confidence: mean top-1 probability in the bin (%)")
    axes.set_ylabel("top-1 accuracy in the bin (%)")
    note = f"; not shown (no per-sample file): {', '.join(skipped)}" if skipped else ""
    splits = ", ".join(sorted({row["split"] for row in rows}))
    axes.set_title(f"{dataset}: reliability diagram\n({splits} split; {bins} equal-width confidence bins, "
                   f"ECE in %{note})", fontsize=9)
    axes.grid(True, color="0.9", linewidth=0.6)
    axes.legend(loc="upper left", fontsize=8, framealpha=0.9)
    return figure


def distribution_shift_figure(rows: List[dict], dataset: str, rule: str):
    """Accuracy under shifted test label distributions, forward-50 (head-heavy) to backward-50."""
    figure, axes = _figure()
    names = None
    for index, (row, label) in enumerate(zip(rows, row_labels(rows))):
        data = figure_data.accuracy_by_test_distribution(row)
        names = data["names"]
        s = style(index)
        x = np.arange(len(names))
        axes.plot(x, data["mean"], color=s["color"], marker=s["marker"], linestyle=s["linestyle"], linewidth=1.5,
                  markersize=5, label=label)
        if row["seeds"] > 1:
            axes.errorbar(x, data["mean"], yerr=data["std"], fmt="none", ecolor=s["color"], capsize=2, linewidth=0.8)
    uniform = names.index("uniform")
    axes.axvline(uniform, color="0.5", linestyle=":", linewidth=1)
    axes.set_xticks(np.arange(len(names)))
    axes.set_xticklabels(names, rotation=35, ha="right")
    axes.set_xlabel("test label distribution (forward-F: the most frequent training class is F times as likely "
                    "as the rarest;\nbackward-F: the rarest is F times as likely as the most frequent)", fontsize=8)
    axes.set_ylabel("top-1 accuracy (%)")
    splits = ", ".join(sorted({row["split"] for row in rows}))
    spread = "; error bars: std over seeds" if any(row["seeds"] > 1 for row in rows) else ""
    axes.set_title(f"{dataset}: accuracy across test label distributions\n({splits} split, per-class accuracy "
                   f"reweighted by each distribution{spread})", fontsize=9)
    axes.grid(True, color="0.9", linewidth=0.6)
    axes.legend(fontsize=8, framealpha=0.9)
    return figure


COST_AXES = (("device_hours", "device-hours (devices x wall clock, from scratch; log)", "log"),
             ("trained_parameters", "trained parameters (from scratch; symlog: 0 = none)", "symlog"))


def cost_figure(rows: List[dict], dataset: str, rule: str):
    """Overall accuracy against device-hours and against trained parameters (records' cost
    blocks; rows without one are listed, not drawn), the Pareto front of each marked: the rows
    no other row beats at no more cost."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(FIGURE_SIZE[0] * 1.5, FIGURE_SIZE[1]), dpi=DPI, layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    labels = row_labels(rows)
    costs = [figure_data.row_cost(row) for row in rows]
    skipped = [label for label, cost in zip(labels, costs) if cost is None]
    if len(skipped) == len(rows):
        raise UserError(f"no run of {dataset} shown has a cost block (records from before costs were kept); "
                        "rerun them with this ltbench")
    for axes, (key, xlabel, scale) in zip(panels, COST_AXES):
        points, indices = [], []
        for index, (row, cost) in enumerate(zip(rows, costs)):
            if cost is None or cost[key] is None:
                continue
            s = style(index)
            axes.plot([cost[key]], [row["overall"]["mean"]], color=s["color"], marker=s["marker"], linestyle="none",
                      markersize=7, label=labels[index])
            points.append((cost[key], row["overall"]["mean"]))
            indices.append(index)
        front = [points[i] for i in figure_data.pareto_front(points)]
        if front:
            axes.step([x for x, _ in front], [y for _, y in front], where="post", color="0.35", linestyle="--",
                      linewidth=1, label="Pareto front" if key == COST_AXES[0][0] else None)
        if scale == "symlog":
            axes.set_xscale("symlog", linthresh=1)
        elif all(x > 0 for x, _ in points):
            axes.set_xscale("log")
        axes.set_xlabel(xlabel, fontsize=8)
        axes.grid(True, color="0.9", linewidth=0.6)
    panels[0].set_ylabel("overall top-1 accuracy (%)")
    note = f"; no cost recorded: {', '.join(skipped)}" if skipped else ""
    splits = ", ".join(sorted({row["split"] for row in rows}))
    figure.suptitle(f"{dataset}: accuracy against what it cost\n({splits} split; mean over seeds; dashed: the "
                    f"Pareto front{note})", fontsize=9)
    panels[0].legend(fontsize=7, framealpha=0.9, loc="lower right")
    return figure


def draw(kind: str, rows: List[dict], dataset: str, rule: str, window: Optional[int] = None,
         resamples: int = 10_000, seed: int = 0, bins: int = ECE_BINS):
    """The figure of one kind ('per-class', 'groups', 'calibration', 'test-dist', 'cost') of the rows."""
    from matplotlib import rc_context

    builders: Dict[str, Callable] = {
        "per-class": lambda: per_class_figure(rows, dataset, rule, window),
        "groups": lambda: groups_figure(rows, dataset, rule, resamples, seed),
        "calibration": lambda: calibration_figure(rows, dataset, rule, bins),
        "test-dist": lambda: distribution_shift_figure(rows, dataset, rule),
        "cost": lambda: cost_figure(rows, dataset, rule),
    }
    with rc_context(RC):
        return builders[kind]()


def figure_bytes(figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes, the same bytes for the same figure."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context(RC):
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return buffer.getvalue()


def plot_path(out_dir, dataset: str, kind: str, fmt: str) -> Path:
    """<out_dir>/<dataset>/<kind>.<fmt>"""
    return Path(out_dir) / slug(dataset) / f"{kind}.{fmt}"


def write_figure(figure, path: Path, fmt: str) -> Path:
    data = figure_bytes(figure, fmt)
    atomic_write(path, lambda handle: handle.write(data))
    return path
