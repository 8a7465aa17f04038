"""Figures and pages at iNaturalist's 8142 classes (issue 23): per-class figures bin the classes by
a stated rule, run pages summarise the per-class table in bins and keep every class in a CSV file."""
from pathlib import Path

import numpy as np

from ltbench.records import figure_data, plots, report
from ltbench.records.selection import select_rows

CLASSES = 8142


def _record(fake_record, num_classes=CLASSES):
    rng = np.random.default_rng(0)
    record = fake_record(dataset="inat2018", per_class=[None if c % 97 == 0 else float(rng.integers(0, 101))
                                                        for c in range(num_classes)])
    record["class_counts"] = np.sort(rng.integers(2, 1000, num_classes))[::-1].tolist()
    record.update(run_id=f"linear_probe__tiny__{'a' * 10}__seed1", config={}, versions={}, split_files={},
                  timings={}, device="cpu", details={}, extra_metrics={})
    return record


def test_classes_are_binned_in_consecutive_equal_bins():
    assert [(part.start, part.stop) for part in figure_data.class_bins(10, 3)] == [(0, 3), (3, 7), (7, 10)]
    assert len(figure_data.class_bins(2, 200)) == 2  # never an empty bin
    data = {"counts": np.array([50, 40, 30, 20, 0]), "accuracy": np.array([10.0, np.nan, 30.0, 50.0, 99.0]),
            "smoothed": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}
    binned = figure_data.binned_per_class(data, bins=2)  # the class without training images is left out
    assert binned["sizes"].tolist() == [2, 2] and binned["counts"].tolist() == [45.0, 25.0]
    assert binned["accuracy"].tolist() == [10.0, 40.0] and binned["smoothed"].tolist() == [1.0, 3.0]


def test_the_per_class_figure_of_8142_classes_draws_bins_and_says_so(tmp_path, fake_record):
    rows = select_rows([(tmp_path / "run.json", _record(fake_record))], "inat2018")
    figure = plots.draw("per-class", rows, "inat2018", "standard")
    [points] = figure.axes[0].collections
    assert len(points.get_offsets()) == figure_data.CLASS_BINS  # before: one point a class, 8142
    assert "8142 classes by training images in 200 bins of 40-41" in figure.axes[0].get_title()
    assert len(plots.figure_bytes(figure, "svg")) < 150_000
    # A few hundred classes are still drawn one point each.
    rows = select_rows([(tmp_path / "run.json", _record(fake_record, 365))], "inat2018")
    assert len(plots.draw("per-class", rows, "inat2018", "standard").axes[0].collections[0].get_offsets()) == 365


def test_a_run_page_of_8142_classes_summarises_them_and_keeps_every_class_in_a_csv(tmp_path, fake_record):
    record = _record(fake_record)
    path = tmp_path / "results" / "run.json"
    rows = select_rows([(path, record)], "inat2018")
    written = report.write_report({"inat2018": rows}, tmp_path / "site", tmp_path / "results", None, resamples=10)
    page = next(Path(p) for p in written if p.name == report.run_page_name(record))
    html = page.read_text()
    assert html.count("<tr>") < 100 and len(html) < 60_000  # before: 8142 table rows
    assert f'href="{report.per_class_csv_name(record)}"' in html and "50 bins" in html
    lines = (page.parent / report.per_class_csv_name(record)).read_text().splitlines()
    assert len(lines) == CLASSES + 1 and lines[0] == "class,training_images,group,top1"
    assert lines[1].startswith(f"0,{record['class_counts'][0]},") and lines[1].endswith(",")  # class 0: no test images
    bins = report._per_class_bins(record)
    assert sum(b["classes"] for b in bins) == CLASSES and bins[0]["ranks"] == "1-163"
