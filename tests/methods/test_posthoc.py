"""Post-hoc methods (posthoc_la, posthoc_taunorm, posthoc_prior): their arithmetic against values
computed by hand, the linear-head artifact, and end to end on a saved digits_lt linear-probe run."""
import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ltbench.config import RunRequest, parse_cfg_options, resolve
from ltbench.core.errors import UserError
from ltbench.engine.head_artifacts import linear_map, read_linear_head, save_linear_head
from ltbench.methods.posthoc.adjust import (
    log_prior,
    logit_adjusted,
    prior_corrected,
    read_target_prior,
    target_log_prior,
)
from ltbench.methods.posthoc.sources import plain_ce_problem
from ltbench.models.calibration import select_on_grid, tau_normalised, tau_normalised_logits
from ltbench.models.heads import CosineHead

# --- arithmetic by hand --------------------------------------------------------------------------

def test_logit_adjustment_and_prior_correction_by_hand():
    prior = log_prior([3, 1])  # p = (0.75, 0.25)
    np.testing.assert_allclose(prior, np.log([0.75, 0.25]))
    logits = np.array([[1.0, 0.0]])
    # tau 1: 1 - log 0.75 = 1.2877 < 0 - log 0.25 = 1.3863, so the rare class wins.
    np.testing.assert_allclose(logit_adjusted(logits, prior, 1.0), [[1.2876821, 1.3862944]], rtol=1e-6)
    np.testing.assert_allclose(logit_adjusted(logits, prior, 0.0), logits)
    # Uniform target: the same as tau 1 up to the constant log 0.5.
    uniform = target_log_prior(None, 2, "uniform")
    np.testing.assert_allclose(prior_corrected(logits, prior, uniform), [[1.2876821 - np.log(2),
                                                                           1.3862944 - np.log(2)]], rtol=1e-6)
    # Target (1, 3) -> q = (0.25, 0.75): z - log p + log q = (1 + log(1/3), log 3).
    target = target_log_prior([1, 3], 2, [1, 3])
    np.testing.assert_allclose(prior_corrected(logits, prior, target), [[1 - np.log(3), np.log(3)]], rtol=1e-6)


def test_tau_normalised_logits_from_the_head_output_match_the_normalised_head():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))  # row norms 5 and 1
        head.bias.copy_(torch.tensor([1.0, 2.0]))
    features = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    logits = head(features).detach().numpy()  # [[8, 3], [3, 1]]
    weight, bias = head.weight.detach().numpy(), head.bias.detach().numpy()
    # tau 1: ((8 - 1) / 5, (3 - 2) / 1) and ((3 - 1) / 5, (1 - 2) / 1).
    np.testing.assert_allclose(tau_normalised_logits(logits, weight, bias, 1.0), [[1.4, 1.0], [0.4, -1.0]], rtol=1e-6)
    for tau in (0.0, 0.5, 1.0, 2.0):
        np.testing.assert_allclose(tau_normalised_logits(logits, weight, bias, tau),
                                   tau_normalised(head, tau)(features).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_the_grid_choice_is_the_best_and_the_first_of_equals():
    assert select_on_grid([0.0, 0.5, 1.0], {0.0: 50.0, 0.5: 75.0, 1.0: 75.0}.get) == (0.5, [50.0, 75.0, 75.0])


# --- which sources count as trained with plain CE ------------------------------------------------

def _resolved(method, *options):
    return resolve(RunRequest(method=method, dataset="digits_lt", backbone="tiny", seed=0,
                              options=parse_cfg_options(options)))


def _problem(method, *options):
    """plain_ce_problem of a method's resolved config, read through its declared options."""
    from ltbench.core import registry

    return plain_ce_problem(_resolved(method, *options), registry.get(registry.METHODS, method).declared_options())


def test_plain_ce_is_decided_from_the_source_config():
    assert _problem("linear_probe") is None
    assert _problem("decoder_ce") is None  # stage2.type none: its loss and sampler are unused
    assert _problem("clip_finetune") is None and _problem("prompt_tuning") is None
    assert "train.sampler='class_balanced'" in _problem("linear_probe", "train.sampler=class_balanced")
    assert "loss={'type': 'balanced_softmax', 'tau': 1.0} is not plain CE" in _problem("decoder_bs")
    assert "stage2.type=crt" in _problem("decoder_crt")
    # Its losses and samplers are found by their declared type, not their names: phase B's
    # class-aware sampler; phase A's contrastive objective is no registered loss.
    assert "phase_b.sampler" in _problem("ballad")
    assert "trains no classifier" in _problem("zeroshot_clip")
    assert "loss=" in _problem("tackle") and "is not plain CE" in _problem("lift")


def test_target_prior_from_a_list_or_a_file_and_its_errors(tmp_path):
    assert read_target_prior("uniform") is None
    (tmp_path / "q.json").write_text("[1, 2, 3]")
    (tmp_path / "q.txt").write_text("1\n2\n3\n")
    assert read_target_prior(str(tmp_path / "q.json")) == read_target_prior(str(tmp_path / "q.txt")) == [1, 2, 3]
    for bad in ([1, 0], [], "nope.json", [1, "a"]):
        with pytest.raises(UserError, match="target_prior"):
            read_target_prior(bad)
    with pytest.raises(UserError, match="has 3 numbers, but this dataset has 10 classes"):
        target_log_prior([1, 2, 3], 10, [1, 2, 3])


# --- the linear head artifact --------------------------------------------------------------------

def _ctx(tmp_path):
    return SimpleNamespace(work_dir=tmp_path / "work", outputs=SimpleNamespace(artifacts={}, details={}))


def test_a_saved_linear_head_reads_back_and_a_changed_file_is_refused(tmp_path):
    ctx = _ctx(tmp_path)
    head = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 3))
    assert save_linear_head(ctx, head)
    record = {"method": "linear_probe", "artifacts": ctx.outputs.artifacts, "details": ctx.outputs.details}
    assert ctx.outputs.details["linear_head"]["shape"] == [3, 4]
    read = read_linear_head(record, "run")
    np.testing.assert_array_equal(read.weight, head[1].weight.detach().numpy())
    np.testing.assert_array_equal(read.bias, head[1].bias.detach().numpy())
    Path(ctx.outputs.artifacts["linear_head"]).write_bytes(b"other")
    with pytest.raises(UserError, match="SHA-256 differs"):
        read_linear_head(record, "run")
    with pytest.raises(UserError, match="saved no linear head"):
        read_linear_head({"method": "zeroshot_clip", "artifacts": {}, "details": {}}, "run")


def test_a_cosine_head_saves_the_linear_map_of_normalised_features():
    head = CosineHead(4, 3, scale=10.0)
    features = torch.randn(5, 4)
    found = linear_map(head)
    normalised = torch.nn.functional.normalize(features, dim=-1).numpy()
    np.testing.assert_allclose(normalised @ found.weight.T + found.bias, head(features).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    assert linear_map(torch.nn.Sequential(torch.nn.ReLU())) is None


# --- end to end on a saved linear-probe run ------------------------------------------------------

def _run(run_cli, out, method, *options, expect=0):
    code, stdout, stderr = run_cli("run", "--method", method, "--dataset", "digits_lt", "--out", out,
                                   "--no-progress", "--save-logits", *(["--cfg-options", *options] if options else []))
    assert code == expect, stderr
    if expect:
        return stderr
    path = Path(stdout.strip().splitlines()[-1].removeprefix("record: "))
    return path, json.loads(path.read_text()), stderr


def _logits(record_path, split="test"):
    with np.load(Path(record_path).with_suffix(".logits.npz")) as saved:
        return np.array(saved[f"logits_{split}"])


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A finished linear-probe run on digits_lt with its logits saved (plain CE, instance sampling)."""
    from ltbench.app.cli import main

    out = tmp_path_factory.mktemp("posthoc")
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", "--method", "linear_probe", "--dataset", "digits_lt", "--out", str(out),
                     "--no-progress", "--save-logits"]) == 0
    path = Path(stdout.getvalue().strip().splitlines()[-1].removeprefix("record: "))
    return out, path, json.loads(path.read_text())


def test_logit_adjustment_of_a_saved_probe_lifts_few_shot_and_is_z_minus_log_prior(run_cli, probe):
    out, source_path, source = probe
    path, record, _ = _run(run_cli, out, "posthoc_la", f"source={source_path}")
    assert record["metrics"]["few"] > source["metrics"]["few"] + 10
    details = record["details"]["posthoc"]
    assert details["source"] == str(source_path) and details["source_run_id"] == source["run_id"]
    assert details["tau"] == 1.0 and details["tau_from"] == "fixed"
    expected = _logits(source_path) - np.log(np.asarray(source["class_counts"]) / sum(source["class_counts"]))
    np.testing.assert_allclose(_logits(path), expected, rtol=1e-5, atol=1e-5)
    # Prior correction to uniform ranks exactly as tau 1.
    _, prior, _ = _run(run_cli, out, "posthoc_prior", f"source={source_path}")
    assert prior["metrics"]["per_class_accuracy"] == record["metrics"]["per_class_accuracy"]
    assert prior["details"]["posthoc"]["target_prior"] == "uniform"


def test_tau_chosen_on_val_is_recorded_and_is_the_grid_value_best_on_the_saved_val_logits(run_cli, probe):
    out, source_path, source = probe
    grid = [0.0, 0.5, 1.0, 1.5]
    _, record, stderr = _run(run_cli, out, "posthoc_la", f"source={source_path}", "tau=null", f"tau_grid={grid}")
    details = record["details"]["posthoc"]
    val_logits, labels = _logits(source_path, "val"), np.load(source_path.with_suffix(".logits.npz"))["labels_val"]
    prior = np.log(np.asarray(source["class_counts"]) / sum(source["class_counts"]))
    by_hand = [100.0 * float(((val_logits - tau * prior).argmax(1) == labels).mean()) for tau in grid]
    assert details["tau_grid"] == grid and details["selected_on"] == "val"
    np.testing.assert_allclose(details["val_top1"], by_hand, atol=1e-9)
    assert details["tau"] == grid[by_hand.index(max(by_hand))] and "chosen on val" in stderr


def test_tau_normalisation_of_the_saved_head_by_hand(run_cli, probe):
    out, source_path, source = probe
    path, record, _ = _run(run_cli, out, "posthoc_taunorm", f"source={source_path}", "tau=0.5")
    with np.load(source["artifacts"]["linear_head"]) as head:
        weight, bias = head["weight"], head["bias"]
    expected = (_logits(source_path) - bias) / np.sqrt(np.linalg.norm(weight, axis=1))
    np.testing.assert_allclose(_logits(path), expected, rtol=1e-4, atol=1e-4)
    assert record["details"]["posthoc"]["tau"] == 0.5 and record["details"]["posthoc"]["head_kind"] == "linear"


def test_taunorm_reads_the_head_of_a_moved_results_folder(run_cli, probe, tmp_path):
    """Issue 24 item 8: the record names its head by an absolute path; a results folder moved
    elsewhere (the old one gone) still finds its head in its own work/ folder, checked by its hash."""
    out, source_path, _ = probe
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    moved_source = moved / source_path.relative_to(out)
    record = json.loads(moved_source.read_text())
    record["artifacts"]["linear_head"] = str(tmp_path / "gone" / "linear_head.npz")  # as if the old folder were gone
    moved_source.write_text(json.dumps(record))
    _, expected, _ = _run(run_cli, out, "posthoc_taunorm", f"source={source_path}", "tau=0.5")
    _, record, _ = _run(run_cli, moved, "posthoc_taunorm", f"source={moved_source}", "tau=0.5")
    assert record["metrics"]["per_class_accuracy"] == expected["metrics"]["per_class_accuracy"]


def test_skip_existing_recomputes_a_posthoc_run_whose_source_was_redone(run_cli, probe, tmp_path):
    """Issue 24 item 8: the post-hoc record is keyed on its source record's file (SHA-256), so
    --skip-existing keeps it while the source is unchanged and recomputes it once the source run
    was redone (same path, other file)."""
    out, source_path, _ = probe
    source = tmp_path / "source" / source_path.name
    source.parent.mkdir()
    for suffix in (".json", ".logits.npz", ".preds.npz"):
        shutil.copy(source_path.with_suffix(suffix), source.with_suffix(suffix))
    args = ("run", "--method", "posthoc_la", "--dataset", "digits_lt", "--out", tmp_path, "--no-progress",
            "--skip-existing", "--cfg-options", f"source={source}")
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stderr
    record_path = Path(stdout.strip().splitlines()[-1].removeprefix("record: "))
    first = json.loads(record_path.read_text())
    assert first["source_records"] == {str(source): hashlib.sha256(source.read_bytes()).hexdigest()}
    code, stdout, _ = run_cli(*args)
    assert code == 0 and stdout.startswith("skipped:")
    redone = json.loads(source.read_text())
    redone["created"] = "2030-01-01T00:00:00.000000+00:00"  # the source run again: a new file at the same path
    source.write_text(json.dumps(redone))
    code, stdout, stderr = run_cli(*args)
    assert code == 0 and "recomputing" in stderr and stdout.strip().splitlines()[-1] == f"record: {record_path}"
    assert json.loads(record_path.read_text())["source_records"][str(source)] == \
        hashlib.sha256(source.read_bytes()).hexdigest()


def _edited_copy(source_path, tmp_path, edit):
    """A copy of the source record (beside a copy of its logits) with `edit(record)` applied."""
    record = json.loads(Path(source_path).read_text())
    copy = tmp_path / "edited.json"
    shutil.copy(Path(source_path).with_suffix(".logits.npz"), copy.with_suffix(".logits.npz"))
    record["logits_path"] = copy.with_suffix(".logits.npz").name
    edit(record)
    copy.write_text(json.dumps(record))
    return copy


def _tampered_head(tmp_path):
    def edit(record):
        head = tmp_path / "head.npz"
        shutil.copy(record["artifacts"]["linear_head"], head)
        with head.open("ab") as handle:
            handle.write(b"\0")
        record["artifacts"]["linear_head"] = str(head)
    return edit


def _sampler(name):
    def edit(record):
        record["config"]["train"]["sampler"] = name
    return edit


@pytest.mark.parametrize("method, options, edit, message", [
    ("posthoc_la", ["source=missing/run.json"], None, "run record not found"),
    ("posthoc_la", [], lambda r: r.update(logits_path=None), "rerun it with --save-logits"),
    ("posthoc_la", [], lambda r: r.update(dataset="cifar10_lt"), "a run of dataset 'cifar10_lt'"),
    ("posthoc_la", [], lambda r: r.update(class_counts=r["class_counts"][:5]), "a run of 5 classes"),
    ("posthoc_la", ["tau=-1"], None, "tau=-1: expected a finite number from 0 to 10 or null"),
    ("posthoc_la", ["tau=null", "tau_grid=[]"], None, "tau_grid=[]: expected a list of finite numbers from 0 to 10 (at least 1)"),
    ("posthoc_taunorm", [], _tampered_head, "SHA-256 differs"),
    ("posthoc_taunorm", ["source=zeroshot_clip"], None, "that method saves no linear head"),
    ("posthoc_prior", [], _sampler("class_balanced"), "train.sampler='class_balanced' is not instance-balanced"),
    ("posthoc_prior", ["target_prior=[1,2]"], None, "has 2 numbers, but this dataset has 10 classes"),
])
def test_bad_input_is_one_line_error(run_cli, probe, tmp_path, method, options, edit, message):
    _, source_path, _ = probe
    if edit is _tampered_head:
        edit = _tampered_head(tmp_path)
    if not any(option.startswith("source=") for option in options):
        source = _edited_copy(source_path, tmp_path, edit) if edit else source_path
        options = [f"source={source}", *options]
    stderr = _run(run_cli, tmp_path / "out", method, *options, expect=2)
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "out" / "runs").exists()  # no record of a refused run


class _Source:
    """A stand-in source whose val logits are the evaluation split's (no files)."""

    def __init__(self, logits):
        self._logits = logits

    def logits(self, split):
        return self._logits


def test_tau_chosen_on_a_val_that_is_the_test_split_warns_and_says_so(probe):
    from ltbench.methods.posthoc.method import PosthocLogitAdjustment

    _, source_path, _ = probe
    cfg = _resolved("posthoc_la", f"source={source_path}", "tau=null")
    method = PosthocLogitAdjustment(cfg)
    method.source = _Source(np.array([[2.0, 0.0], [2.0, 0.0]]))
    method.train_log_prior = np.log([0.9, 0.1])
    test = SimpleNamespace(name="test", fingerprint="same", labels=np.array([1, 1]))
    data = SimpleNamespace(name="toy", splits={"val": test, "test": test}, split=lambda name: test)
    logged = []
    details = method.prepare(data, SimpleNamespace(log=logged.append, warn_once=lambda message, key=None:
                                                   logged.append(message)))
    assert details["selected_on"] == "val (the evaluation images themselves)"
    assert any(line.startswith("warning:") and "optimistic" in line for line in logged)
    assert details["tau"] == 1.0  # 2 - tau log 0.9 < -tau log 0.1 first at tau 1 (0.75: 2.08 > 1.73)
