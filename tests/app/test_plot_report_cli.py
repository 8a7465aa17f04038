"""`ltbench plot` and `ltbench report` on the quick start's digits_lt records."""
import re

import pytest

from ltbench.app.cli import plot as plot_cli
from ltbench.records.plots import FORMATS, KINDS


def _files(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_cli_offers_every_kind_and_format():
    assert plot_cli.KINDS == KINDS and plot_cli.FORMATS == FORMATS


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
def test_every_figure_in_png_and_svg_with_the_same_bytes_twice(quickstart_results, run_cli, tmp_path):
    # Its speed: benchmarks/perf/quick_commands.py --only plot (under 10 s was the budget).
    code, out, err = run_cli("plot", "all", "--dataset", "digits_lt", "--results", quickstart_results,
                             "--format", "png", "svg")
    assert code == 0, err
    folder = quickstart_results / "plots" / "digits_lt"
    first = _files(folder)
    assert set(first) == {f"{kind}.{fmt}" for kind in KINDS for fmt in ("png", "svg")}
    assert all(data.startswith(b"\x89PNG") for name, data in first.items() if name.endswith(".png"))
    svg = first["calibration.svg"].decode()
    # The legend names both runs with their ECE; no date in the file.
    assert re.search(r"linear_probe: ECE \d+\.\d\d", svg) and "zeroshot_clip: ECE" in svg
    assert "<dc:date>" not in svg
    assert "moving average over 3" in first["per-class.svg"].decode()
    assert "95% bootstrap" in first["groups.svg"].decode() and "backward-50" in first["test-dist.svg"].decode()

    code, _, err = run_cli("plot", "all", "--dataset", "digits_lt", "--results", quickstart_results,
                           "--format", "png", "svg")
    assert code == 0, err
    assert _files(folder) == first
    # A file's bytes do not depend on the other formats asked for (each is drawn afresh).
    code, _, err = run_cli("plot", "groups", "--dataset", "digits_lt", "--results", quickstart_results, "--format", "svg")
    assert code == 0, err
    assert (folder / "groups.svg").read_bytes() == first["groups.svg"]

    # One row by its selector, into another folder.
    code, out, err = run_cli("plot", "per-class", "--dataset", "digits_lt", "linear_probe:tiny",
                             "--results", quickstart_results, "--out", tmp_path / "figures")
    assert code == 0, err
    assert (tmp_path / "figures" / "digits_lt" / "per-class.png").is_file() and "(1 row," in out
    assert (tmp_path / "figures" / "digits_lt" / "per-class.png").read_bytes() != first["per-class.png"]


@pytest.mark.parametrize("arguments, message", [
    (["plot", "groups", "--dataset", "cifar10_lt"], "no run records for dataset 'cifar10_lt'"),
    (["plot", "groups", "ballad", "--dataset", "digits_lt"], "row selector 'ballad' matches no run of digits_lt"),
    (["plot", "groups", "--dataset", "digits_lt", "--bootstrap", "0"], "--bootstrap 0"),
    (["report", "--dataset", "cifar10_lt"], "no run records for dataset 'cifar10_lt'"),
    (["report", "--bootstrap", "-1"], "--bootstrap -1"),
])
def test_bad_input_gets_one_line(quickstart_results, run_cli, arguments, message):
    code, _, err = run_cli(*arguments, "--results", quickstart_results)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_an_unwritable_out_is_one_line_before_any_work(quickstart_results, run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for command in (["plot", "per-class", "--dataset", "digits_lt"], ["report"]):
        code, _, err = run_cli(*command, "--results", quickstart_results, "--out", blocker / "inside")
        assert code == 2 and err.count("\n") == 1 and "--out" in err and "cannot write there" in err, err


def test_no_records_at_all(run_cli, tmp_path):
    code, _, err = run_cli("report", "--results", tmp_path)
    assert code == 2 and "no run records under" in err


@pytest.mark.slow  # over 3 s on 2 cores: outside the inner loop
def test_the_report_is_the_same_bytes_twice_and_holds_every_part(quickstart_results, digits_reported, run_cli, tmp_path):
    pages = {}
    for attempt in ("a", "b"):  # its speed: benchmarks/perf/quick_commands.py --only report (10 s was the budget)
        code, out, err = run_cli("report", "--results", quickstart_results, "--out", tmp_path / attempt,
                                 "--reported", digits_reported)
        assert code == 0, err
        pages[attempt] = _files(tmp_path / attempt)
    assert pages["a"] == pages["b"]
    names = set(pages["a"])
    runs = sorted(name for name in names if name.startswith("digits_lt/runs/"))
    assert "index.html" in names and "digits_lt/index.html" in names and len(runs) == 2
    board = pages["a"]["digits_lt/index.html"].decode()
    assert board.count('class="run-link"') == 2 and "42.5 (T)" in board  # the Reported column
    assert board.count("data:image/svg+xml;base64,") == len(KINDS)
    assert "http://" not in board.replace("http://www.w3.org", "") and "https://" not in board  # nothing fetched
    assert str(tmp_path) not in board and str(quickstart_results) not in board  # relative links only
    run_page = pages["a"][runs[0]].decode()
    for part in ("Config hash", "Versions", "Split hashes", "Timings", "Per-class accuracy", "Config", "Details"):
        assert part in run_page
    # The per-class table names each class (the record keeps digits_lt's class names).
    assert "<th>Name</th>" in run_page and run_page.count("<td>seven</td>") == 1


def test_the_readme_figure_is_committed_small_and_regenerated_by_a_documented_script(repo_root):
    figure = repo_root / "docs" / "figures" / "digits_lt_per_class.png"
    script = repo_root / "docs" / "figures" / "make_readme_figure.sh"
    assert figure.read_bytes().startswith(b"\x89PNG") and figure.stat().st_size < 150_000
    assert "ltbench plot per-class --dataset digits_lt" in script.read_text() and script.stat().st_mode & 0o111
    readme = (repo_root / "README.md").read_text()
    assert "docs/figures/digits_lt_per_class.png" in readme and "make_readme_figure.sh" in readme
    assert "results/report/index.html" in readme
