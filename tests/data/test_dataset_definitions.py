"""Datasets defined by YAML (a `split_files:` section of datasets/<name>.yaml) over the one
split-file builder: the built-in ones, the README's example on $LTBENCH_CONFIG_PATH, a plug-in's
own YAML folder, and the one-line errors of a bad definition."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from ltbench import config
from ltbench.core import registry
from ltbench.core.errors import UserError
from ltbench.data import build_dataset
from ltbench.data.datasets import files

# The README's YAML example promises 5 classes and 310 / 50 / 100 images.
TRAIN_PER_CLASS = [160, 80, 40, 20, 10]
SHAPES = ["triangle", "square", "pentagon", "hexagon", "circle"]


def _readme_yaml(repo_root) -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", (repo_root / "README.md").read_text(), flags=re.S)
    return next(block for block in blocks if "split_files:" in block)


def _write_shapes_data(root):
    """The files the README's shapes_lt.yaml names, in `root`: tiny images, one split file each."""
    rng = np.random.default_rng(0)
    (root / "shapes_names.txt").write_text("".join(f"{name}\n" for name in SHAPES))
    for split, counts in (("train", TRAIN_PER_CLASS), ("val", [10] * 5), ("test", [20] * 5)):
        lines = []
        for label, count in enumerate(counts):
            for index in range(count):
                relative = f"img/{split}/{label}_{index}.png"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                shade = np.full((8, 8, 3), 40 * label, dtype=np.uint8) + rng.integers(0, 30, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(shade).save(root / relative)
                lines.append(f"{relative} {label}\n")
        (root / f"shapes_{split}.txt").write_text("".join(lines))


@pytest.fixture
def shapes_config(tmp_path, repo_root, monkeypatch):
    """$LTBENCH_CONFIG_PATH holding the README's datasets/shapes_lt.yaml, verbatim; its data in data/."""
    folder = tmp_path / "ltbench-configs"
    (folder / "datasets").mkdir(parents=True)
    (folder / "datasets" / "shapes_lt.yaml").write_text(_readme_yaml(repo_root))
    data = tmp_path / "data"
    data.mkdir()
    _write_shapes_data(data)
    monkeypatch.setenv(config.CONFIG_PATH_ENV, str(folder))
    return folder, data


def test_the_docs_yaml_example_is_a_valid_definition(repo_root, tmp_path):
    from ltbench.data.datasets.definitions import parse_definition

    blocks = re.findall(r"```yaml\n(.*?)```", (repo_root / "docs" / "adding-a-dataset.md").read_text(), flags=re.S)
    text = next(block for block in blocks if "split_files:" in block)
    definition = parse_definition("shapes_lt", config.parse_yaml_text(text, "docs")["split_files"], tmp_path)
    assert definition.files == {"train": "shapes_train.txt", "val": "shapes_val.txt", "test": "shapes_test.txt"}
    assert definition.expected == {"classes": 5, "train": 310, "val": 50, "test": 100}
    assert set(definition.notes) == {"layout", "test"}


def test_the_published_datasets_are_yaml_over_the_one_split_file_builder():
    for name in ("imagenet_lt", "places_lt", "inat2018"):
        builder = registry.get(registry.DATASETS, name)
        assert builder.definition.name == name and builder.definition.source.name == f"{name}.yaml"
    # No Python builder of their own is left: the file module registers folder_lt alone.
    assert [name for name, obj in registry.DATASETS.module_dict.items() if obj.__module__ == files.__name__] == \
        ["folder_lt"]
    inat = registry.get(registry.DATASETS, "inat2018").definition
    assert inat.expected == {"classes": 8142, "train": 437513, "val": 24426, "test": 24426}
    assert inat.files["val"] == inat.files["test"] == "iNaturalist18_val.txt"


def test_the_definition_stays_out_of_the_run_config():
    cfg = config.resolve(config.RunRequest("zeroshot_clip", "places_lt"))
    assert config.DATASET_DEFINITION_KEY not in cfg
    assert cfg["dataset"] == {"root": None, "split_dir": None, "allow_duplicates": False, "name": "places_lt"}


def test_readme_yaml_dataset_is_listed_checked_run_and_recorded_by_its_name(run_cli, shapes_config, tmp_path):
    _, data = shapes_config
    code, out, _ = run_cli("list", "datasets")
    assert code == 0 and re.search(r"^shapes_lt +My five shapes, long-tailed split files$", out, flags=re.M)

    code, out, err = run_cli("data", "check", "shapes_lt", "--data-root", data)
    assert code == 0, err
    assert "dataset: shapes_lt (5 classes)" in out
    assert next(line for line in out.splitlines() if line.startswith("train")).split()[:6] == \
        ["train", "310", "5", "160", "10", "16.0"]
    for key, count in (("classes", 5), ("train", 310), ("val", 50), ("test", 100)):
        assert re.search(rf"^  {key}: {count} (classes|images) expected, ok$", out, flags=re.M), out

    results = tmp_path / "results"
    code, _, err = run_cli("run", "--method", "zeroshot_clip", "--dataset", "shapes_lt", "--backbone", "tiny",
                           "--data-root", data, "--out", results, "--no-progress",
                           "--cfg-options", "text.templates=single", "runtime.num_workers=0")
    assert code == 0, err
    [path] = (results / "runs").rglob("*.json")
    record = json.loads(path.read_text())
    assert path.parent.name == "shapes_lt" and record["dataset"] == "shapes_lt"
    assert record["config"]["dataset"]["name"] == "shapes_lt" and "split_files" not in record["config"]
    assert set(record["split_files"]) == {"train", "val", "test"}
    assert record["class_names"] == SHAPES and record["class_counts"] == TRAIN_PER_CLASS


def test_a_file_gone_from_the_search_path_is_no_dataset_any_more(run_cli, shapes_config, monkeypatch):
    assert "shapes_lt" in registry.names(registry.DATASETS)
    monkeypatch.delenv(config.CONFIG_PATH_ENV)
    assert "shapes_lt" not in registry.names(registry.DATASETS)
    code, _, err = run_cli("data", "check", "shapes_lt")
    assert code == 2 and "unknown dataset 'shapes_lt'" in err


def test_a_config_path_folder_that_is_not_there_is_a_one_line_error(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv(config.CONFIG_PATH_ENV, str(tmp_path / "ltbench-confgis"))
    code, _, err = run_cli("data", "check", "shapes_lt")
    assert code == 2 and err.count("\n") == 1
    assert f"$LTBENCH_CONFIG_PATH names {tmp_path / 'ltbench-confgis'}, which is not a folder" in err


def test_data_check_names_a_count_that_differs_from_the_definition(run_cli, shapes_config):
    _, data = shapes_config
    lines = (data / "shapes_test.txt").read_text().splitlines(keepends=True)
    (data / "shapes_test.txt").write_text("".join(lines[:-3]))
    code, out, _ = run_cli("data", "check", "shapes_lt", "--data-root", data)
    assert code == 0
    assert "  test: 100 images expected, MISMATCH: 97 found; another version of the split file?" in out
    assert "  train: 310 images expected, ok" in out


def test_a_wrong_class_count_is_an_error_before_any_work(shapes_config):
    _, data = shapes_config
    (data / "shapes_names.txt").write_text("triangle\nsquare\npentagon\nhexagon\n")
    with pytest.raises(UserError, match=r"shapes_names\.txt has 4 names but shapes_lt has 5 classes"):
        build_dataset({"name": "shapes_lt", "root": str(data)})


def test_a_user_file_of_a_built_in_dataset_is_merged_over_it(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "places_lt.yaml").write_text("batch_size: 32\nsplit_files: {expected: {train: 7}}\n")
    monkeypatch.setenv(config.CONFIG_PATH_ENV, str(tmp_path))
    cfg = config.resolve(config.RunRequest("zeroshot_clip", "places_lt"))
    assert cfg["batch_size"] == 32 and cfg["eval_batch_size"] == 256
    definition = registry.get(registry.DATASETS, "places_lt").definition
    assert definition.expected == {"classes": 365, "train": 7, "val": 7300, "test": 36500}
    assert definition.files["train"] == "Places_LT_train.txt"


def test_a_plugin_adds_its_own_yaml_folder(tmp_path, monkeypatch, repo_root):
    monkeypatch.setattr(config.search, "_added_config_dirs", [])
    plugin = tmp_path / "my_plugin" / "configs"
    (plugin / "datasets").mkdir(parents=True)
    (plugin / "datasets" / "shapes_lt.yaml").write_text(_readme_yaml(repo_root))
    assert "shapes_lt" not in registry.names(registry.DATASETS)
    from ltbench.api import add_config_path

    assert add_config_path(plugin) == plugin.resolve()
    assert registry.get(registry.DATASETS, "shapes_lt").definition.source == plugin.resolve() / "datasets" / "shapes_lt.yaml"
    with pytest.raises(UserError, match="is not a folder"):
        add_config_path(tmp_path / "nowhere")


def test_a_definition_may_not_take_a_python_builder_name(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "digits_lt.yaml").write_text(
        "split_files: {description: d, files: {train: a.txt, test: b.txt}, class_names: {file: n.txt}}\n")
    monkeypatch.setenv(config.CONFIG_PATH_ENV, str(tmp_path))
    with pytest.raises(UserError, match=r"digits_lt\.yaml defines the split-file dataset 'digits_lt', but "
                                        r"ltbench\.data\.datasets\.digits registers a builder of that name"):
        registry.get(registry.DATASETS, "digits_lt")


GOOD = {"description": "d", "files": {"train": "a.txt", "test": "b.txt"}, "class_names": {"file": "n.txt"}}


@pytest.mark.parametrize("change, message", [
    ({"filse": {}}, r"split_files: unknown key 'filse' \(did you mean: files\?\)"),
    ({"description": " "}, r"split_files\.description: give one line"),
    ({"files": {"train": "a.txt"}}, r"split_files\.files: name the test split file"),
    ({"files": {"train": "a.txt", "test": "b.txt", "tset": "c.txt"}}, r"split_files\.files: unknown key 'tset'"),
    ({"class_names": {"file": "n.txt", "reader": "plane"}}, r"class_names\.reader: unknown reader 'plane' "
                                                            r"\(did you mean: plain"),
    ({"class_names": {"reader": "plain"}}, r"class_names: name the class-names file"),
    ({"class_names": {"names": "imagenet"}}, r"class_names\.names: unknown name list 'imagenet'"),
    ({"expected": {"train": True}}, r"expected\.train: expected a whole number >= 1, got True"),
    ({"notes": {"test": 3}}, r"notes\.test: expected a line of text"),
])
def test_a_bad_definition_is_a_one_line_error_naming_file_and_key(tmp_path, monkeypatch, change, message):
    import yaml

    (tmp_path / "datasets").mkdir()
    path = tmp_path / "datasets" / "bad_lt.yaml"
    path.write_text(yaml.safe_dump({"split_files": {**GOOD, **change}}))
    monkeypatch.setenv(config.CONFIG_PATH_ENV, str(tmp_path))
    with pytest.raises(UserError, match=message) as error:
        registry.get(registry.DATASETS, "bad_lt")
    assert str(error.value).startswith(f"{path}: split_files") and "\n" not in str(error.value)
