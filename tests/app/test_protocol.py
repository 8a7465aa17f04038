"""`ltbench sweep SUITE --protocol equal_budget` (issue 25): protocol files checked in one line;
every method of a suite tuned under the same budget, a method with nothing to tune run as its recipe."""
import json

import pytest

from ltbench.app.protocol import find_protocol, load_protocol
from ltbench.core.errors import UserError


def test_the_shipped_equal_budget_protocol_reads():
    protocol = load_protocol(find_protocol("equal_budget"))
    assert protocol.trials == 20 and protocol.seeds == 3 and protocol.objective == "overall"


@pytest.mark.parametrize("text, message", [
    ("seeds: 3\n", "give trials and / or budget"),
    ("trials: 0\n", "trials: expected an integer >= 1"),
    ("trials: 5\nbudget: -2\n", "budget: expected a positive number"),
    ("trials: 5\nobjective: loss\n", "objective: 'loss' is not a metric"),
    ("trials: 5\ntrails: 3\n", "unknown key 'trails'"),
])
def test_a_bad_protocol_is_one_line(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_protocol(path)


@pytest.mark.slow
def test_a_suite_under_a_protocol_tunes_each_method_with_the_same_budget(tmp_path, run_cli):
    suite = tmp_path / "suite.yaml"
    suite.write_text("methods: [zeroshot_clip, linear_probe]\ndatasets: [digits_lt]\nbackbones: [tiny]\nseeds: [0]\n"
                     "cfg_options: {text.templates: single}\n"
                     "overrides:\n  - method: linear_probe\n    cfg_options: {train.epochs: 5}\n")
    protocol = tmp_path / "two.yaml"
    protocol.write_text("trials: 2\nseeds: 2\n")
    out = tmp_path / "results"
    code, text, err = run_cli("sweep", suite, "--protocol", protocol, "--out", out, "--no-progress")
    assert code == 0, err
    records = [json.loads(path.read_text()) for path in (out / "runs" / "digits_lt").glob("*.json")]
    tuned = [record for record in records if record.get("tuned")]
    recipe = [record for record in records if not record.get("tuned")]
    assert sorted(record["seed"] for record in tuned) == [0, 1] and {r["method"] for r in tuned} == {"linear_probe"}
    assert all(record["tuned"]["trials"] == 2 for record in tuned)
    assert sorted(record["seed"] for record in recipe) == [0, 1] and {r["method"] for r in recipe} == {"zeroshot_clip"}
