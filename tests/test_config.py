import pytest

from ltbench.config import RunRequest, config_hash, deep_merge, parse_cfg_option, parse_cfg_options, resolve
from ltbench.core.errors import UserError


def test_deep_merge_keeps_unrelated_keys():
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}, "d": 3}


@pytest.mark.parametrize("text, expected", [
    ("train.lr=1e-3", (["train", "lr"], 0.001)),
    ("seed=3", (["seed"], 3)),
    ("x.flag=true", (["x", "flag"], True)),
    ("members=[runs/a.json, zeroshot]", (["members"], ["runs/a.json", "zeroshot"])),
    ("phase_a.checkpoint=null", (["phase_a", "checkpoint"], None)),
])
def test_cfg_option_values_are_yaml(text, expected):
    assert parse_cfg_option(text) == expected


def test_malformed_cfg_option_is_a_user_error():
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_cfg_option("train.lr")


def test_resolution_order_dataset_method_per_dataset_cli():
    request = RunRequest("clip_finetune", "digits_lt", backbone="RN50:none", seed=4,
                         options=parse_cfg_options(["train.epochs=7", "head.type=linear"]))
    cfg = resolve(request)
    assert cfg["eval_batch_size"] == 512                # datasets/digits_lt.yaml over defaults.yaml
    assert cfg["train"]["lr"] == 2e-3                   # per_dataset.digits_lt over the method YAML
    assert cfg["train"]["momentum"] == 0.9              # the method YAML over the declared default
    assert cfg["train"]["warmup_type"] == "linear"      # the declared default (TRAINING), no YAML sets it
    assert cfg["train"]["epochs"] == 7 and cfg["head"]["type"] == "linear"  # --cfg-options last
    assert cfg["seed"] == 4 and cfg["backbone"]["clip"] == "RN50:none"
    assert cfg["method"] == "clip_finetune" and cfg["dataset"]["name"] == "digits_lt"


def test_unknown_cfg_option_key_names_close_matches_and_where_options_go():
    with pytest.raises(UserError, match=r"unknown config key 'train.epoch'.*train.epochs.*--cfg-options.*`options`"):
        resolve(RunRequest("linear_probe", "digits_lt", options=parse_cfg_options(["train.epoch=3"])))


def test_config_hash_ignores_seed_paths_and_runtime_only():
    base = {"method": "m", "seed": 0, "dataset": {"name": "d", "root": "/a", "split_dir": None},
            "runtime": {"num_workers": 2}, "train": {"lr": 0.1}}
    same = deep_merge(base, {"seed": 5, "dataset": {"root": "/b"}, "runtime": {"num_workers": 8}})
    other = deep_merge(base, {"train": {"lr": 0.2}})
    assert config_hash(base) == config_hash(same)
    assert config_hash(base) != config_hash(other)


def test_cli_flags_set_their_keys_and_cfg_options_are_strict():
    cfg = resolve(RunRequest("zeroshot_clip", "digits_lt", overrides={"dataset.root": "/x", "runtime.device": None}))
    assert cfg["dataset"]["root"] == "/x" and cfg["runtime"]["device"] == "auto"  # None: not given
    with pytest.raises(UserError, match="unknown config key 'b'"):
        resolve(RunRequest("zeroshot_clip", "digits_lt", options=(("b", 2),)))


def _config_folder(tmp_path, monkeypatch, method_yaml: str):
    """A config folder with the real defaults and digits_lt files and methods/m.yaml."""
    from ltbench.config import benchmarks_dir

    real = benchmarks_dir()
    (tmp_path / "methods").mkdir()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "defaults.yaml").write_text((real / "defaults.yaml").read_text())
    (tmp_path / "datasets" / "digits_lt.yaml").write_text((real / "datasets" / "digits_lt.yaml").read_text())
    (tmp_path / "datasets" / "cifar10_lt.yaml").write_text((real / "datasets" / "cifar10_lt.yaml").read_text())
    (tmp_path / "methods" / "m.yaml").write_text(method_yaml)
    monkeypatch.setenv("LTBENCH_BENCHMARKS", str(tmp_path))


def test_per_backbone_sections_follow_the_backbone_the_cli_chose(tmp_path, monkeypatch, register_method):
    from ltbench.api import Method, Option

    _config_folder(tmp_path, monkeypatch,
                   "train: {lr: 0.1}\n"
                   "per_backbone:\n  RN50: {train: {lr: 0.2}}\n  tiny: {train: {lr: 0.3}}\n"
                   "per_dataset:\n  digits_lt:\n    train: {epochs: 5}\n    per_backbone:\n"
                   "      RN50: {train: {epochs: 9}}\n")

    class M(Method):
        options = {"train": {"lr": Option(float, 1.0, source="ours", gt=0), "epochs": Option(int, 1, source="ours")}}

    register_method("m", M)

    def train(dataset, backbone=None, *options):
        request = RunRequest("m", dataset, backbone=backbone, options=parse_cfg_options(options))
        return resolve(request)["train"]

    assert train("digits_lt") == {"lr": 0.3, "epochs": 5}
    assert train("digits_lt", "RN50:openai") == {"lr": 0.2, "epochs": 9}
    assert train("cifar10_lt", None, "backbone.clip=RN50:none") == {"lr": 0.2, "epochs": 1}
    # CLI values still win over the backbone's section.
    assert train("digits_lt", "RN50:openai", "train.lr=0.5")["lr"] == 0.5


@pytest.mark.parametrize("dataset", ["imagenet_lt", "places_lt", "inat2018", "cifar100_lt", "digits_lt"])
@pytest.mark.parametrize("backbone", ["RN50:openai", "RN101:openai", "ViT-B-16:openai", "RN50x16:openai"])
def test_ballad_configs_resolve_for_every_benchmark_dataset_and_backbone(dataset, backbone):
    cfg = resolve(RunRequest("ballad", dataset, backbone=backbone))
    assert cfg["phase_a"]["loss"] == "contrastive" and cfg["phase_b"]["adapter"] == "relu"
    assert cfg["phase_b"]["sampler"] == {"type": "class_aware", "samples_per_class": 4}
    if dataset != "digits_lt":  # the public code's ImageNet-LT RN50 recipe everywhere else
        assert (cfg["phase_a"]["lr"], cfg["phase_a"]["epochs"], cfg["phase_a"]["batch_size"]) == (1e-5, 50, 512)
        assert (cfg["phase_b"]["lr"], cfg["phase_b"]["epochs"], cfg["phase_b"]["batch_size"]) == (0.2, 10, 512)


def _tackle_config(dataset, *options):
    return resolve(RunRequest("tackle", dataset, options=parse_cfg_options(options)))


def test_tackle_recipes_follow_the_vision_backbone():
    imagenet = _tackle_config("imagenet_lt")
    assert imagenet["backbone"]["vision"] == "resnext50_32x4d" and imagenet["vision"]["pretrained"] is False
    assert (imagenet["train"]["optimizer"], imagenet["train"]["epochs"]) == ("sgd", 90)
    deit = _tackle_config("imagenet_lt", "backbone.vision=deit_small_patch16_224")
    assert (deit["train"]["optimizer"], deit["train"]["epochs"], deit["train"]["weight_decay"]) == ("adamw", 300, 0.05)
    places = _tackle_config("places_lt")
    assert places["backbone"]["vision"] == "resnet152" and places["vision"]["pretrained"] is True
    assert places["loss"]["type"] == "balanced_softmax" and places["backbone"]["clip"] == "ViT-B-16:openai"
    digits = _tackle_config("digits_lt")
    assert digits["backbone"]["clip"] == "tiny" and digits["teacher"]["source"] == "ballad_phase_a"


def test_a_config_folder_without_defaults_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LTBENCH_BENCHMARKS", str(tmp_path))
    with pytest.raises(UserError, match=r"config folder .* has no defaults.yaml"):
        resolve(RunRequest("zeroshot_clip", "digits_lt"))


def test_load_yaml_reads_a_changed_file_again_and_hands_out_copies(tmp_path):
    from ltbench.config import load_yaml

    path = tmp_path / "a.yaml"
    path.write_text("train: {lr: 1}\n")
    first = load_yaml(path)
    first["train"]["lr"] = 99  # the caller's copy: the next read is not changed by it
    assert load_yaml(path) == {"train": {"lr": 1}}
    # Rewritten at once, with the same size (and likely the same modification time): read again.
    path.write_text("train: {lr: 2}\n")
    assert load_yaml(path) == {"train": {"lr": 2}}
