"""`ltbench table --cost`, the cost figure and tuned rows (issue 25) on synthetic records."""
import pytest

from ltbench.core.errors import UserError
from ltbench.records import figure_data, plots, tables


def _cost(trained=650, hours=0.5, device=3 << 20, host=5 << 20, reused_trained=0):
    return {"parameters": {"trained": trained, "frozen": 10, "trained_from_scratch": trained + reused_trained},
            "from_scratch": {"device_hours": hours}, "peak_device_bytes": device, "peak_host_bytes": host}


def test_cost_columns_are_the_means_over_seeds(fake_record):
    runs = [{**fake_record(seed=1), "cost": _cost(hours=0.5)}, {**fake_record(seed=2), "cost": _cost(hours=1.5)}]
    rows = tables.leaderboard_rows(runs, "places_lt")
    assert tables.add_cost(rows) == []
    extra = rows[0]["extra"]
    assert extra["Trained params"]["mean"] == 650 and extra["Device-h"]["mean"] == pytest.approx(1.0)
    assert extra["Peak dev. MiB"]["mean"] == 3 and extra["Peak host MiB"]["mean"] == 5
    text = tables.render_table(rows, "md")
    cells = [cell.strip() for cell in text.splitlines()[2].split("|")]
    assert "Trained params" in text and cells[-5:-1] == ["650", "1.0000", "3", "5"]


def test_records_without_cost_get_dashes_and_are_named(fake_record):
    rows = tables.leaderboard_rows([fake_record(seed=1)], "places_lt")
    assert tables.add_cost(rows) == ["cost"]
    assert rows[0]["extra"]["Device-h"]["mean"] is None


def test_a_tuned_row_stands_beside_the_recipe_row_even_with_the_same_config(fake_record):
    tuned = {"study": "lp", "trials": 6, "budget": None, "objective": "overall", "best_value": 50.0}
    recipe, tuned_run = fake_record(seed=1), {**fake_record(seed=1, overall=55.0), "tuned": tuned}
    rows = tables.leaderboard_rows([recipe, tuned_run], "places_lt")
    assert [row["method_label"] for row in rows] == ["linear_probe", "linear_probe (tuned: 6 trials, overall on val)"]
    marked = {**tuned_run, "test_as_val": True}
    assert "overall on TEST" in tables.leaderboard_rows([marked], "places_lt")[0]["method_label"]


def test_pareto_front_keeps_the_points_no_cheaper_point_beats():
    points = [(1.0, 50.0), (2.0, 49.0), (3.0, 60.0), (0.5, 40.0), (3.0, 55.0)]
    assert figure_data.pareto_front(points) == [3, 0, 2]


def test_the_cost_figure_draws_rows_with_cost_and_names_those_without(fake_record):
    with_cost = tables.leaderboard_rows([{**fake_record(seed=1), "cost": _cost()},
                                         {**fake_record(method="zeroshot_clip"), "cost": _cost(trained=0, hours=0.1)},
                                         fake_record(method="old")], "places_lt")
    svg = plots.figure_bytes(plots.draw("cost", with_cost, "places_lt", "standard"), "svg").decode()
    assert "Pareto front" in svg and "no cost recorded: old" in svg
    without = tables.leaderboard_rows([fake_record(seed=1)], "places_lt")
    with pytest.raises(UserError, match="no run of places_lt shown has a cost block"):
        plots.draw("cost", without, "places_lt", "standard")
