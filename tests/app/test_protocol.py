"""`ltbench sweep SUITE --protocol equal_budget` (issue 25): protocol files checked in one line;
every method of a suite tuned under the same budget, a method with nothing to tune run as its recipe."""
import json

import pytest

from ltbench.app.protocol import find_protocol, load_protocol
from ltbench.core.errors import UserError

# A suite of a method with nothing to tune (zeroshot_clip) and one with a search space (linear_probe).
TWO_METHOD_SUITE = ("methods: [zeroshot_clip, linear_probe]\ndatasets: [digits_lt]\nbackbones: [tiny]\nseeds: [0]\n"
                    "cfg_options: {text.templates: single}\n"
                    "overrides:\n  - method: linear_probe\n    cfg_options: {train.epochs: 5}\n")


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
    suite.write_text(TWO_METHOD_SUITE)
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


@pytest.mark.slow
def test_a_protocol_on_slurm_submits_each_study_and_a_local_rerun_runs_the_best_settings(tmp_path, capsys):
    """submitit's local executor pickles each job and runs it in its own process, as Slurm would."""
    submitit = pytest.importorskip("submitit")
    from ltbench.app.protocol import run_protocol
    from ltbench.app.suite import load_suite
    from ltbench.app.sweep import SlurmOptions, SweepOptions

    class Recording:  # the local executor, keeping every job it was given
        def __init__(self, executor):
            self.executor, self.jobs = executor, []

        def batch(self):
            return self.executor.batch()

        def submit(self, *args, **kwargs):
            job = self.executor.submit(*args, **kwargs)
            self.jobs.append(job)
            return job

    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(TWO_METHOD_SUITE)
    protocol_path = tmp_path / "two.yaml"
    protocol_path.write_text("trials: 2\nseeds: 1\n")
    suite, protocol = load_suite(suite_path), load_protocol(protocol_path)
    out = tmp_path / "results"
    options = SweepOptions(out=str(out), progress=False)
    executor = Recording(submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local"))
    assert run_protocol(suite, protocol, options, slurm=SlurmOptions(partition="local"), executor=executor) == 0
    assert "rerun this command with --launcher local" in capsys.readouterr().out
    assert len(executor.jobs) == 2  # linear_probe's study worker, zeroshot_clip's recipe seed
    for job in executor.jobs:
        job.result()
    runs = out / "runs" / "digits_lt"
    assert [json.loads(path.read_text())["method"] for path in runs.glob("*.json")] == ["zeroshot_clip"]
    assert run_protocol(suite, protocol, options) == 0  # here: the study is finished, its best settings run
    records = [json.loads(path.read_text()) for path in runs.glob("*.json")]
    assert sorted((r["method"], bool(r.get("tuned"))) for r in records) == [("linear_probe", True),
                                                                             ("zeroshot_clip", False)]
    [tuned] = [r for r in records if r.get("tuned")]
    assert tuned["tuned"]["trials"] == 2
