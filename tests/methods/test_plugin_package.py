"""A method plug-in as an outside package: the README's "Adding a method" example, installed on the
path with an `ltbench.methods` entry point, and a plug-in that trains with the common training
options it inherits, its per-dataset values in a YAML file beside its code."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ltbench

TRAINED = '''
import numpy as np
import torch

from ltbench.api import METHODS, TRAINING, Method, TensorBatches, build_sampler, create_backbone, image_features


@METHODS.register_module(name="trained_head")
class TrainedHead(Method):
    """A linear head on frozen features, trained with the training options it inherits."""

    options = {"train": TRAINING}

    def fit(self, data, ctx):
        self.encoder = create_backbone(self.cfg["backbone"]["clip"], ctx.device)
        train = data.split("train")
        features = image_features(self.encoder, train, ctx, self.cfg["eval_batch_size"], device=ctx.device)
        # Random-init tiny CLIP features need standardising, as digits_lt's linear probe does.
        self.mean, self.std = features.mean(0), features.std(0).clamp_min(1e-6)
        features = (features - self.mean) / self.std
        self.head = torch.nn.Linear(features.shape[1], data.num_classes).to(ctx.device)
        sampler = build_sampler(self.cfg["train"]["sampler"], train.labels, seed=ctx.seed)
        labels = torch.from_numpy(train.labels).to(ctx.device)
        batches = TensorBatches(features, labels, sampler, self.cfg["batch_size"])
        ctx.trainer(self.cfg["train"]).fit(self.head, batches, batches.steps_per_epoch,
                                           loss_fn=torch.nn.functional.cross_entropy)

    @torch.no_grad()
    def predict(self, split, ctx):
        features = image_features(self.encoder, split, ctx, self.cfg["eval_batch_size"], device=ctx.device)
        return self.head((features - self.mean) / self.std).cpu().numpy()
'''
COMMANDS = [
    ["list", "methods", "--options", "class_mean"],
    ["run", "--method", "class_mean", "--dataset", "digits_lt", "--no-progress", "--cfg-options", "scale=20"],
    ["run", "--method", "class_mean", "--dataset", "digits_lt", "--no-progress", "--cfg-options", "scael=20"],
    ["list", "methods", "--options", "trained_head", "--dataset", "digits_lt"],
    ["run", "--method", "trained_head", "--dataset", "digits_lt", "--no-progress", "--cfg-options", "train.lr=0.01"],
]
DRIVER = """
import json, sys
from ltbench.app.cli import main
for arguments in json.loads(sys.argv[1]):
    print("=== " + " ".join(arguments), flush=True)
    code = main(arguments)
    print("=== exit " + str(code), flush=True)
"""


def _example(readme: Path, fence: str, marker: str) -> str:
    blocks = re.findall(rf"```{fence}\n(.*?)```", readme.read_text(), flags=re.S)
    return next(block for block in blocks if marker in block)


def _install(site: Path, readme: Path):
    """The README's module as my_package/class_mean.py, a trained plug-in beside it with its YAML in
    my_package/methods/, and the metadata pip would write for the README's entry-point table."""
    package = site / "my_package"
    (package / "methods").mkdir(parents=True)
    # The package ships its YAML beside its code: its folder joins the config search path.
    (package / "__init__.py").write_text("from pathlib import Path\n\nfrom ltbench.api import add_config_path\n\n"
                                         "add_config_path(Path(__file__).parent)\n")
    (package / "class_mean.py").write_text(_example(readme, "python", "METHODS.register_module"))
    (package / "trained.py").write_text(TRAINED)
    (package / "methods" / "trained_head.yaml").write_text(
        "per_dataset:\n  digits_lt:\n    train:\n      epochs: 5             # [ours] a short check\n")
    info = site / "my_package-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    table = _example(readme, "toml", '"ltbench.methods"')
    lines = table[table.index("[project.entry-points."):].splitlines()
    (info / "entry_points.txt").write_text("\n".join(["[ltbench.methods]"] + [line.replace('"', "") for line in lines[1:]]
                                                     + ["trained_head = my_package.trained"]) + "\n")


@pytest.mark.slow  # an outside package and its run: outside the inner loop
def test_readme_method_example_and_a_trained_plugin_run_from_an_outside_package(tmp_path):
    readme = Path(ltbench.__file__).resolve().parent.parent / "README.md"
    site = tmp_path / "site"
    _install(site, readme)
    path = [str(site), str(Path(ltbench.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(part for part in path if part),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(COMMANDS)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    outputs = re.findall(r"^=== (.*?)\n(.*?)^=== exit (\d+)$", result.stdout, flags=re.S | re.M)
    assert [int(code) for _, _, code in outputs] == [0, 0, 2, 0, 0], result.stdout + result.stderr
    listing, run, _, trained, trained_run = (text for _, text, _ in outputs)
    assert re.search(r"^scale +10\.0 +ours +a finite number > 0 +logits = scale \* cos\(f, class mean\)",
                     listing, flags=re.M)
    assert "unknown config key 'scael' (did you mean: scale?)" in result.stderr
    record = json.loads((work / run.strip().splitlines()[-1].removeprefix("record: ")).read_text())
    assert record["config"]["scale"] == 20 and record["metrics"]["overall"] > 30
    # The trained plug-in's options: the inherited training section, 5 epochs from its own YAML.
    rows = {line.split()[0]: line.split() for line in trained.splitlines()[2:]}
    assert rows["train.epochs"][1:3] == ["5", "ours"] and rows["train.optimizer"][1:3] == ["adamw", "ours"]
    assert {"train.lr", "train.weight_decay", "train.warmup_epochs", "train.sampler"} <= set(rows)
    record = json.loads((work / trained_run.strip().splitlines()[-1].removeprefix("record: ")).read_text())
    train = record["config"]["train"]
    assert train["epochs"] == 5 and train["lr"] == 0.01 and train["optimizer"] == "adamw" and train["warmup_type"] == "linear"
    assert record["metrics"]["overall"] > 30  # a trained head on standardised features beats chance (10) by far
