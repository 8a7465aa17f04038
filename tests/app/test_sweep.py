"""`ltbench sweep`: suite files, the local launcher end to end, and the Slurm launcher without Slurm."""
import json
import os
import textwrap

import pytest

from ltbench.app.suite import load_suite
from ltbench.app.sweep import SlurmOptions, SweepOptions, submit_to_slurm

FAST = ["--no-progress"]


def _write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _records(out):
    return [json.loads(path.read_text()) for path in sorted((out / "runs").rglob("*.json"))]


def test_the_grid_expands_in_order_with_common_and_matching_options(tmp_path):
    suite = load_suite(_write(tmp_path, """
        description: two methods, two seeds
        methods: [zeroshot_clip, linear_probe]
        datasets: [digits_lt]
        seeds: [0, 1]
        cfg_options: {text.templates: single}
        overrides:
          - method: linear_probe
            cfg_options: {train.lr: 1e-3, loss: {type: ldam, max_margin: 0.5}}
          - {method: [linear_probe], dataset: digits_lt, cfg_options: {train.lr: 0.5}}
    """))
    assert suite.name == "suite" and suite.description == "two methods, two seeds"
    assert [(e.method, e.dataset, e.backbone, e.seed) for e in suite.entries] == [
        ("zeroshot_clip", "digits_lt", None, 0), ("zeroshot_clip", "digits_lt", None, 1),
        ("linear_probe", "digits_lt", None, 0), ("linear_probe", "digits_lt", None, 1)]
    assert suite.entries[0].cfg_options == (("text.templates", "single"),)
    # The values as the suite wrote them, in order: later options win.
    assert suite.entries[2].cfg_options == (("text.templates", "single"), ("train.lr", 0.001),
                                            ("loss", {"type": "ldam", "max_margin": 0.5}), ("train.lr", 0.5))
    assert suite.entries[2].label == "linear_probe on digits_lt (configured backbone, seed 0)"


def test_parts_run_one_after_another_from_the_top_levels_settings(tmp_path):
    suite = load_suite(_write(tmp_path, """
        description: with and without TTE, then one run per PEFT type
        methods: [lift, lift_plus]
        datasets: [imagenet_lt]
        backbones: [ViT-B-16:openai]
        cfg_options: {text.templates: single}
        parts:
          - description: without TTE
          - cfg_options: {tte.enabled: true}
          - methods: [lift_plus]
            datasets: [imagenet_lt, places_lt]
            cfg_options: {peft.type: lora}
            overrides:
              - {dataset: places_lt, cfg_options: {peft.bottleneck: 4}}
    """))
    assert suite.description == "with and without TTE, then one run per PEFT type"
    assert [(e.method, e.dataset, e.backbone, e.cfg_options) for e in suite.entries] == [
        ("lift", "imagenet_lt", "ViT-B-16:openai", (("text.templates", "single"),)),
        ("lift_plus", "imagenet_lt", "ViT-B-16:openai", (("text.templates", "single"),)),
        ("lift", "imagenet_lt", "ViT-B-16:openai", (("text.templates", "single"), ("tte.enabled", True))),
        ("lift_plus", "imagenet_lt", "ViT-B-16:openai", (("text.templates", "single"), ("tte.enabled", True))),
        ("lift_plus", "imagenet_lt", "ViT-B-16:openai", (("text.templates", "single"), ("peft.type", "lora"))),
        ("lift_plus", "places_lt", "ViT-B-16:openai",
         (("text.templates", "single"), ("peft.type", "lora"), ("peft.bottleneck", 4))),
    ]


@pytest.mark.parametrize("text, message", [
    ("methods: [a]\n", "datasets is missing"),
    ("methods: [a]\ndatasets: [b]\nseed: [0]\n", "unknown key 'seed' (did you mean: seeds?)"),
    ("methods: a\ndatasets: [b]\n", "methods: expected a non-empty list"),
    ("methods: [a, 3]\ndatasets: [b]\n", "methods[1]: expected a method name (a string), got 3"),
    ("methods: [a, a]\ndatasets: [b]\n", "methods: a listed more than once"),
    ("methods: [a]\ndatasets: [b]\nseeds: [0, x]\n", "seeds[1]: expected an integer >= 0, got 'x'"),
    ("methods: [a]\ndatasets: [b]\ncfg_options: [train.lr=1]\n", "cfg_options: expected a mapping"),
    ("methods: [a]\ndatasets: [b]\ncfg_options: {'train lr': 1}\n", "'train lr' is not a dotted config key"),
    ("methods: [a]\ndatasets: [b]\noverrides: [{method: c, cfg_options: {x: 1}}]\n",
     "overrides[0].method: 'c' is not in the suite's methods"),
    ("methods: [a]\ndatasets: [b]\noverrides: [{cfg_options: {x: 1}}]\n",
     "overrides[0]: give method, dataset or backbone"),
    ("methods: [a]\ndatasets: [b]\noverrides: [{method: a}]\n", "overrides[0]: cfg_options is missing"),
    ("methods: [a]\ndatasets: [b]\noverrides: [{method: a, backbone: tiny, cfg_options: {}}]\n",
     "overrides[0].backbone: the suite lists no backbones"),
    ("methods: [a\n", "invalid YAML"),
    ("methods: [a]\nparts: [{datasets: [b], seed: [0]}]\n", "parts[0]: unknown key 'seed' (did you mean: seeds?)"),
    ("parts: [{datasets: [b]}]\n", "parts[0].methods is missing"),
    ("methods: [a]\ndatasets: [b]\nparts: []\n", "parts: expected a non-empty list"),
    ("methods: [a]\ndatasets: [b]\noverrides: [{method: a, cfg_options: {x: 1}}]\nparts: [{}]\n",
     "overrides: with parts, each part gives its own overrides"),
    ("methods: [a]\ndatasets: [b]\nparts: [{overrides: [{method: c, cfg_options: {x: 1}}]}]\n",
     "parts[0].overrides[0].method: 'c' is not in the suite's methods"),
])
def test_suite_mistakes_are_one_line_errors_naming_file_and_key(tmp_path, run_cli, text, message):
    path = _write(tmp_path, text, name="bad.yaml")
    code, out, err = run_cli("sweep", path, "--dry-run")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(path) in err and message in err, err


def test_an_unknown_suite_name_lists_the_suites(run_cli):
    code, _, err = run_cli("sweep", "digits_smok", "--dry-run")
    assert code == 2 and "suite file not found: digits_smok" in err and "digits_smoke" in err


@pytest.mark.slow  # a whole suite: outside the inner loop
def test_digits_smoke_suite_end_to_end(run_cli, tmp_path):
    out = tmp_path / "results"
    code, stdout, stderr = run_cli("sweep", "digits_smoke", "--out", out, *FAST)
    assert code == 0, stderr
    assert "sweep digits_smoke: 6 entries: 6 ran, 0 skipped (record exists), 0 failed" in stdout
    records = _records(out)
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("decoder_bs", 0), ("decoder_bs", 1), ("linear_probe", 0), ("linear_probe", 1),
        ("zeroshot_clip", 0), ("zeroshot_clip", 1)]
    for record in records:
        config = record["config"]
        assert record["backbone"] == "tiny" and config["text"]["templates"] == "single"
        if record["method"] == "linear_probe":
            assert config["train"]["epochs"] == 5
        if record["method"] == "decoder_bs":
            assert config["stage1"]["iterations"] == 20 and config["loss"]["type"] == "balanced_softmax"

    # The same run typed by hand has the same record: the sweep resolves configs as `ltbench run` does.
    code, stdout, _ = run_cli("run", "--method", "linear_probe", "--dataset", "digits_lt", "--backbone", "tiny",
                              "--seed", 1, "--cfg-options", "text.templates=single", "train.epochs=5",
                              "--out", out, "--skip-existing", *FAST)
    assert code == 0 and stdout.startswith("skipped")

    code, stdout, _ = run_cli("sweep", "digits_smoke", "--out", out, *FAST)
    assert code == 0 and "0 ran, 6 skipped (record exists), 0 failed" in stdout
    code, stdout, _ = run_cli("sweep", "digits_smoke", "--out", out, "--dry-run", "--force")
    assert code == 0 and stdout.count("] rerun ") == 6


def test_a_failing_entry_is_reported_and_the_sweep_goes_on(run_cli, tmp_path):
    suite = _write(tmp_path, """
        methods: [not_a_method, zeroshot_clip]
        datasets: [digits_lt]
        backbones: [tiny]
        cfg_options: {text.templates: single}
    """)
    out = tmp_path / "results"
    code, stdout, _ = run_cli("sweep", suite, "--dry-run", "--out", out)
    assert code == 1 and "[1] error  not_a_method on digits_lt" in stdout and "[2] run    zeroshot_clip" in stdout
    code, stdout, stderr = run_cli("sweep", suite, "--out", out, *FAST)
    assert code == 1 and "Traceback" not in stdout + stderr
    assert "1 ran, 0 skipped (record exists), 1 failed" in stdout
    assert "failed: not_a_method on digits_lt (tiny, configured seed): unknown method 'not_a_method'" in stdout
    assert [r["method"] for r in _records(out)] == ["zeroshot_clip"]


SLURM_SUITE = """
    methods: [zeroshot_clip, not_a_method]
    datasets: [digits_lt]
    backbones: [tiny]
    seeds: [0, 1, 2]
    cfg_options: {text.templates: single}
"""


def test_slurm_submission_writes_the_sbatch_parameters(run_cli, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    # A stand-in for Slurm's commands: sbatch keeps the script it is given and answers with a job id.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("sbatch", "srun"):
        (bin_dir / command).write_text('#!/bin/sh\ncp "$1" "$(dirname "$1")/sbatch_script.sh"\n'
                                       'echo "Submitted batch job 4242"\n')
        (bin_dir / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    suite, out = _write(tmp_path, SLURM_SUITE), tmp_path / "results"
    # Seed 0 has its record already: only seed 1 is submitted.
    assert run_cli("run", "--method", "zeroshot_clip", "--dataset", "digits_lt", "--backbone", "tiny", "--seed", 0,
                   "--cfg-options", "text.templates=single", "--out", out, *FAST)[0] == 0

    code, stdout, stderr = run_cli("sweep", suite, "--out", out, "--launcher", "slurm", "--partition", "gpu",
                                   "--gpus-per-node", 2, "--timeout-min", 60, "--slurm-array-parallelism", 3,
                                   "--slurm-additional", "account=proj")
    assert code == 1 and "Traceback" not in stderr
    assert "job 4242_0: zeroshot_clip on digits_lt (tiny, seed 1)" in stdout
    assert "job 4242_1: zeroshot_clip on digits_lt (tiny, seed 2)" in stdout
    assert "not submitted: not_a_method on digits_lt (tiny, seed 0): unknown method 'not_a_method'" in stdout
    assert "6 entries: 2 submitted to partition gpu, 1 skipped (record exists), 3 failed" in stdout
    script = next((out / "slurm").rglob("sbatch_script.sh")).read_text()
    for line in ("--partition=gpu", "--gpus-per-node=2", "--time=60", "--array=0-1%2", "--account=proj",
                 "--job-name=ltbench-suite", "--cpus-per-task=8"):
        assert f"#SBATCH {line}\n" in script


def test_slurm_launcher_needs_slurm_and_a_partition(run_cli, tmp_path, monkeypatch):
    suite = _write(tmp_path, SLURM_SUITE)
    code, _, err = run_cli("sweep", suite, "--launcher", "slurm")
    assert code == 2 and "--launcher slurm needs --partition" in err
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    code, _, err = run_cli("sweep", suite, "--launcher", "slurm", "--partition", "gpu", "--out", tmp_path)
    assert code == 2 and "srun" in err and "Slurm login node" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # fresh processes: outside the inner loop
def test_slurm_jobs_run_the_entry_in_a_fresh_process(tmp_path):
    """submitit's local executor pickles each job and runs it in its own process, as Slurm would."""
    submitit = pytest.importorskip("submitit")
    suite = load_suite(_write(tmp_path, """
        methods: [zeroshot_clip]
        datasets: [digits_lt]
        backbones: [tiny]
        cfg_options: {text.templates: single}
    """))
    out = tmp_path / "results"
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    code, jobs = submit_to_slurm(suite, SweepOptions(out=str(out), progress=False),
                                 SlurmOptions(partition="local"), executor=executor)
    assert code == 0 and len(jobs) == 1
    outcome = jobs[0].result()
    assert outcome.status == "ran" and str(out) in outcome.message
    assert [(r["method"], r["backbone"]) for r in _records(out)] == [("zeroshot_clip", "tiny")]


def test_a_dry_run_finds_what_this_machine_cannot_decode(tmp_path, run_cli):
    """Issue 24 item 8: --dry-run checks gpu_jpeg against this machine (the local launcher runs the
    entries here), as `ltbench run` does before any work; a Slurm dry run leaves it to the nodes."""
    suite = _write(tmp_path, """
        methods: [zeroshot_clip]
        datasets: [digits_lt]
        backbones: [tiny]
        cfg_options: {gpu_jpeg: true, runtime.device: cpu}
    """)
    code, stdout, stderr = run_cli("sweep", suite, "--dry-run", "--out", tmp_path / "results")
    assert code == 1 and "[1] error  zeroshot_clip on digits_lt" in stdout
    assert "gpu_jpeg=true decodes JPEGs on a CUDA GPU" in stdout
    assert "1 of 1 entries would fail" in stderr
    code, stdout, _ = run_cli("sweep", suite, "--dry-run", "--out", tmp_path / "results", "--launcher", "slurm",
                              "--partition", "gpu")
    assert code == 0 and "[1] run    zeroshot_clip" in stdout
