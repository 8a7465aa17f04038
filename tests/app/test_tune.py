"""`ltbench tune` (issue 25): an Optuna study on val under a fixed budget, resumed, refused on bad
input before any trial; the best settings run on the evaluation split and are tuned rows."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ltbench.app import tune as tune_module

STUDY_ARGS = ("tune", "--method", "linear_probe", "--dataset", "digits_lt", "--backbone", "tiny", "--no-progress",
              "--cfg-options", "train.epochs=5", "text.templates=single")


def _completed(db: Path) -> list:
    """(value, settings) of every COMPLETE trial, in trial order."""
    import optuna

    storage = f"sqlite:///{db}"
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(trial.value, trial.params) for trial in study.trials if trial.state.name == "COMPLETE"]


def _heartbeats(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _trial_states(db: Path) -> list:
    with sqlite3.connect(db) as connection:
        try:
            return [state for (state,) in connection.execute("SELECT state FROM trials ORDER BY number")]
        except sqlite3.OperationalError:  # the file exists, Optuna has not made its tables yet
            return []


def _search_file(folder: Path, body: str) -> Path:
    (folder / "methods").mkdir(parents=True, exist_ok=True)
    (folder / "methods" / "linear_probe.yaml").write_text("search:\n" + body)
    return folder


BAD_FLAGS = [
    (("--trials", "0"), "--trials 0: give at least 1 trial"),
    (("--budget", "-1"), "--budget -1.0: give a positive number"),
    ((), "give --trials N and/or --budget"),
    (("--trials", "2", "--objective", "loss"), "--objective loss: not a metric"),
    (("--trials", "2", "--storage", "nonsense"), "--storage nonsense: not a storage URL"),
    (("--trials", "2", "--storage", "sqlite:////nonexistent-ltbench-dir/x/study.db"), "cannot open it"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[flags[0] if flags else "none" for flags, _ in BAD_FLAGS])
def test_bad_flags_are_one_line_before_any_trial(tmp_path, run_cli, flags, message):
    code, _, err = run_cli(*STUDY_ARGS, "--out", tmp_path, *flags)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.rglob("runs"))  # no trial ran


BAD_SPACES = [
    ("  train.nope: {low: 0.1, high: 1.0}   # [ours]\n", "linear_probe has no option 'train.nope'"),
    ("  train.lr: {low: 0.1, high: 0.01}    # [ours]\n", "the range [0.1, 0.01] is empty or inverted"),
    ("  train.lr: {low: 0.1, high: 0.1}     # [ours]\n", "the range [0.1, 0.1] is empty or inverted"),
    ("  train.lr: {low: 0.0, high: 0.1, log: true}  # [ours]\n", "a log range needs low > 0"),
    ("  train.lr: {low: 0.001, high: 0.1}\n", "has no source tag"),
    ("  train.epochs: {low: -5, high: 3}    # [ours]\n", "train.epochs"),  # the option refuses -5
]


@pytest.mark.parametrize("body, message", BAD_SPACES, ids=["unknown", "inverted", "empty", "log0", "untagged", "value"])
def test_a_bad_search_space_is_one_line_before_any_trial(tmp_path, run_cli, monkeypatch, body, message):
    monkeypatch.setenv("LTBENCH_CONFIG_PATH", str(_search_file(tmp_path / "config", body)))
    code, _, err = run_cli(*STUDY_ARGS, "--out", tmp_path / "results", "--trials", "2")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("runs"))


def test_val_that_is_test_is_refused_unless_allowed(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(tune_module, "_val_is_test", lambda cfg: True)
    code, _, err = run_cli(*STUDY_ARGS, "--out", tmp_path, "--trials", "2")
    assert code == 2 and "--allow-test-as-val" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("runs"))


def test_digits_lt_has_a_val_split_of_its_own():
    from ltbench.config import RunRequest, resolve

    assert not tune_module._val_is_test(resolve(RunRequest("linear_probe", "digits_lt", backbone="tiny")))


def test_the_shipped_search_spaces_name_declared_options_with_tagged_ranges():
    from ltbench.config import RunRequest, resolve_run

    for method in ("linear_probe", "decoder_bs", "decoder_crt"):
        schema = resolve_run(RunRequest(method, "digits_lt", backbone="tiny")).schema
        assert tune_module.search_space(method, schema)  # raises on an unknown key, bad range, no tag


@pytest.mark.slow
def test_a_six_trial_study_resumes_and_its_best_settings_become_tuned_rows(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(tune_module, "_val_is_test", lambda cfg: True)  # digits_lt as CIFAR-LT: val is test
    out = tmp_path / "results"
    code, out_text, err = run_cli(*STUDY_ARGS, "--out", out, "--trials", "6", "--seeds", "2", "--allow-test-as-val")
    assert code == 0, err
    study = "linear_probe__digits_lt__tiny__overall"
    db = out / "tune" / study / "study.db"
    assert _trial_states(db) == ["COMPLETE"] * 6
    trials = sorted((out / "tune" / study / "runs" / "digits_lt").glob("*.json"))
    trial_records = [json.loads(path.read_text()) for path in trials]
    # Trials look at val only, and say that val was test here.
    assert all(record["eval_split"] == "val" and record["test_as_val"] for record in trial_records)
    assert all("test" not in record["extra_metrics"] for record in trial_records)
    finals = [json.loads(path.read_text()) for path in sorted((out / "runs" / "digits_lt").glob("*tuned*.json"))]
    assert [record["seed"] for record in finals] == [0, 1]
    best = max(record["metrics"]["overall"] for record in trial_records)
    for record in finals:
        assert record["eval_split"] == "test" and record["test_as_val"] is True
        assert record["tuned"]["trials"] == 6 and record["tuned"]["objective"] == "overall"
        assert record["tuned"]["best_value"] == pytest.approx(best)
        assert record["cost"]["parameters"]["trained"] == 10 * 64 + 10  # the linear head on 64-d tiny features

    # A second tune of the same study resumes it: nothing more to do at 6 trials, 2 more at 8.
    assert run_cli(*STUDY_ARGS, "--out", out, "--trials", "6", "--allow-test-as-val", "--no-final")[0] == 0
    assert len(_trial_states(db)) == 6
    assert run_cli(*STUDY_ARGS, "--out", out, "--trials", "8", "--allow-test-as-val", "--no-final")[0] == 0
    assert _trial_states(db) == ["COMPLETE"] * 8

    # The recipe row and the tuned row side by side.
    assert run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--backbone", "tiny", "--out", out,
                   "--no-progress", "--cfg-options", "train.epochs=5", "text.templates=single")[0] == 0
    code, table, _ = run_cli("table", "--results", out, "--no-reported", "--cost")
    assert code == 0
    assert "| linear_probe " in table and "linear_probe (tuned: 6 trials, overall on TEST)" in table
    # ... and compared sample by sample, recipe against tuned (same seed, same test images).
    recipe_path = next(p for p in (out / "runs" / "digits_lt").glob("linear_probe*seed0.json"))
    tuned_path = next(p for p in (out / "runs" / "digits_lt").glob("*tuned*.json")
                      if json.loads(p.read_text())["seed"] == 0)
    code, text, err = run_cli("compare", recipe_path, tuned_path, "--json", "--bootstrap", "200")
    assert code == 0, err
    [entry] = json.loads(text)["comparisons"]
    assert entry["statistics"]["overall"]["difference"] == pytest.approx(
        json.loads(tuned_path.read_text())["metrics"]["overall"] - json.loads(recipe_path.read_text())["metrics"]["overall"])


@pytest.mark.slow
def test_a_six_trial_study_of_the_decoder(tmp_path, run_cli):
    out = tmp_path / "results"
    code, _, err = run_cli("tune", "--method", "decoder_bs", "--dataset", "digits_lt", "--backbone", "tiny",
                           "--no-progress", "--out", out, "--trials", "6", "--seeds", "1", "--objective", "few",
                           "--cfg-options", "stage1.iterations=20", "stage1.warmup_iterations=5", "text.templates=single")
    assert code == 0, err
    db = out / "tune" / "decoder_bs__digits_lt__tiny__few" / "study.db"
    states = _trial_states(db)  # a trial whose training diverged (NaN logits) fails; six finish
    assert states.count("COMPLETE") == 6 and set(states) <= {"COMPLETE", "FAIL"}
    [final] = [json.loads(path.read_text()) for path in (out / "runs" / "digits_lt").glob("*tuned*.json")]
    assert set(final["tuned"]["params"]) == {"stage1.lr", "stage1.weight_decay", "loss.tau"}
    assert final["config"]["stage1"]["lr"] == pytest.approx(final["tuned"]["params"]["stage1.lr"])
    assert "test_as_val" not in final


@pytest.mark.slow
@pytest.mark.e2e
def test_a_killed_worker_leaves_a_failed_trial_and_a_restarted_one_finishes_the_study(tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "ltbench", *STUDY_ARGS[:-3], "--out", str(out), "--trials", "2", "--no-final",
               "--stale-after", "2", "--cfg-options", "train.epochs=100", "text.templates=single"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    db = out / "tune" / "linear_probe__digits_lt__tiny__overall" / "study.db"
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # Killed once its trial runs and has sent a heartbeat (a worker killed in the milliseconds between
    # starting a trial and its first heartbeat leaves a trial no heartbeat ever marks stale).
    while time.monotonic() < deadline and not (db.exists() and "RUNNING" in _trial_states(db) and _heartbeats(db)):
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert _trial_states(db) == ["RUNNING"]
    time.sleep(3)  # past --stale-after: the trial's heartbeat has stopped
    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    assert _trial_states(db) == ["FAIL", "COMPLETE", "COMPLETE"]
    # The killed trial's settings ran again first, and the study ends as one that ran straight through.
    straight = tmp_path / "straight"
    command[command.index(str(out))] = str(straight)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = _completed(db)
    uninterrupted = _completed(straight / "tune" / "linear_probe__digits_lt__tiny__overall" / "study.db")
    assert resumed == uninterrupted and len(resumed) == 2  # the same settings and values, trial by trial


@pytest.mark.slow
def test_two_local_workers_share_one_study_without_running_a_trial_twice(tmp_path, run_cli):
    out = tmp_path / "results"
    code, _, err = run_cli(*STUDY_ARGS, "--out", out, "--trials", "4", "--workers", "2", "--no-final")
    assert code == 0, err
    db = out / "tune" / "linear_probe__digits_lt__tiny__overall" / "study.db"
    states = _trial_states(db)
    assert states.count("COMPLETE") == 4 and set(states) <= {"COMPLETE", "FAIL"}  # FAIL: a surplus trial, not run
    records = [json.loads(path.read_text()) for path in (out / "tune").rglob("runs/*/*.json")]
    numbers = [record["trial"]["number"] for record in records]
    assert len(numbers) == len(set(numbers)) == len({record["config_hash"] for record in records}) == 4


@pytest.mark.slow
def test_slurm_workers_run_the_study_and_a_local_rerun_runs_the_best_settings(tmp_path, run_cli):
    """submitit's local executor pickles each job and runs it in its own process, as Slurm would."""
    submitit = pytest.importorskip("submitit")
    from ltbench.app.sweep import SlurmOptions
    from ltbench.config import parse_cfg_options

    out = tmp_path / "results"
    request = tune_module.TuneRequest(method="linear_probe", dataset="digits_lt", backbone="tiny", trials=2, seeds=1,
                                      workers=1, out=out, overrides={"runtime.progress": False},
                                      options=tuple(parse_cfg_options(["train.epochs=5", "text.templates=single"])))
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    [job] = tune_module.submit_workers(request, SlurmOptions(partition="local"), executor=executor)
    job.result()
    db = out / "tune" / "linear_probe__digits_lt__tiny__overall" / "study.db"
    assert _trial_states(db) == ["COMPLETE", "COMPLETE"]
    code, _, err = run_cli(*STUDY_ARGS, "--out", out, "--trials", "2", "--seeds", "1")
    assert code == 0, err
    assert _trial_states(db) == ["COMPLETE", "COMPLETE"]  # nothing more to tune: only the final run
    assert len(list((out / "runs" / "digits_lt").glob("*tuned*.json"))) == 1


@pytest.mark.slow
def test_a_device_hour_budget_stops_the_study_once_its_trials_spent_it(tmp_path, run_cli):
    out = tmp_path / "results"
    # Any trial costs more than 1e-9 device-hours: the first one spends the budget, no second starts.
    code, _, err = run_cli(*STUDY_ARGS, "--out", out, "--budget", "1e-9", "--no-final")
    assert code == 0, err
    assert _trial_states(out / "tune" / "linear_probe__digits_lt__tiny__overall" / "study.db") == ["COMPLETE"]


def test_the_pruning_reporter_reports_each_epoch_and_stops_where_the_pruner_says():
    import optuna

    class Trial:
        number, reports, prune_after = 3, [], 2

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= self.prune_after

    trial = Trial()
    assert tune_module._pruning_reporter(trial, tune_module.TuneRequest("m", "d", trials=1)) is None  # --pruner none
    report = tune_module._pruning_reporter(trial, tune_module.TuneRequest("m", "d", trials=1, pruner="median"))
    report("stage1", 0, 41.0)
    with pytest.raises(optuna.TrialPruned, match="pruned after stage2 epoch 1"):
        report("stage2", 0, 12.5)  # steps count on across the run's trainers
    assert trial.reports == [(0, 41.0), (1, 12.5)]


@pytest.mark.slow
def test_a_pruned_study_reports_val_per_epoch_and_finishes_its_trials(tmp_path, run_cli):
    out = tmp_path / "results"
    code, _, err = run_cli(*STUDY_ARGS, "--out", out, "--trials", "7", "--no-final", "--pruner", "median")
    assert code == 0, err
    import optuna

    storage = f"sqlite:///{out / 'tune' / 'linear_probe__digits_lt__tiny__overall' / 'study.db'}"
    trials = optuna.load_study(study_name="linear_probe__digits_lt__tiny__overall", storage=storage).trials
    finished = [trial for trial in trials if trial.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 7 and all(trial.intermediate_values for trial in finished)
    complete = [trial for trial in finished if trial.state.name == "COMPLETE"]
    assert all(len(trial.intermediate_values) == 5 for trial in complete)  # train.epochs=5: one value an epoch
    assert all(len(trial.intermediate_values) < 5 for trial in finished if trial.state.name == "PRUNED")


def test_a_bad_pruner_is_refused():
    from ltbench.core.errors import UserError

    with pytest.raises(UserError, match="--pruner hyperband: choose one of none, median"):
        tune_module._check_request(tune_module.TuneRequest("m", "d", trials=2, pruner="hyperband"))


def test_a_study_whose_trials_all_fail_stops_in_one_line():
    """Only finished trials count against --trials: a study whose every draw fails (a diverging
    range, a setting that fails every run) would draw forever; it stops after 10 failures in a row."""
    import optuna

    from ltbench.core.errors import UserError

    study = optuna.create_study(study_name="s", direction="maximize")
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)}
    for _ in range(tune_module.MAX_FAILED_IN_A_ROW - 1):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"lr": 0.5},
                                                  distributions=distributions))
    tune_module._check_not_failing(study)  # nine in a row: it goes on
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"lr": 0.5},
                                              distributions=distributions))
    with pytest.raises(UserError, match="its last 10 trials failed"):
        tune_module._check_not_failing(study)
    study.add_trial(optuna.trial.create_trial(value=50.0, params={"lr": 0.1}, distributions=distributions))
    tune_module._check_not_failing(study)  # one finished since: it goes on
