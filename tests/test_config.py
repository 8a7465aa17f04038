import pytest

from ltbench.config import (apply_overrides, config_hash, deep_merge, parse_cfg_option,
                            resolve_config)
from ltbench.errors import UserError


class _Method:
    default_config = {"head": {"type": "linear", "scale": 10.0}, "train": {"lr": 0.1}}


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
    cfg = resolve_config("linear_probe", _Method, "digits_lt",
                         {"seed": 4, "backbone.clip": "RN50:none"}, ["train.epochs=7", "head.type=cosine"])
    assert cfg["batch_size"] == 64                      # datasets/digits_lt.yaml over defaults.yaml
    assert cfg["train"]["lr"] == 0.01                   # per_dataset.digits_lt over the method YAML
    assert cfg["head"]["scale"] == 25.0                 # method YAML over the class default
    assert cfg["train"]["epochs"] == 7 and cfg["head"]["type"] == "cosine"  # --cfg-options last
    assert cfg["seed"] == 4 and cfg["backbone"]["clip"] == "RN50:none"
    assert cfg["method"] == "linear_probe" and cfg["dataset"]["name"] == "digits_lt"


def test_unknown_cfg_option_key_names_close_matches():
    with pytest.raises(UserError, match=r"unknown config key 'train.epoch'.*train.epochs"):
        resolve_config("linear_probe", _Method, "digits_lt", {}, ["train.epoch=3"])


def test_config_hash_ignores_seed_paths_and_runtime_only():
    base = {"method": "m", "seed": 0, "dataset": {"name": "d", "root": "/a", "split_dir": None},
            "runtime": {"num_workers": 2}, "train": {"lr": 0.1}}
    same = deep_merge(base, {"seed": 5, "dataset": {"root": "/b"}, "runtime": {"num_workers": 8}})
    other = deep_merge(base, {"train": {"lr": 0.2}})
    assert config_hash(base) == config_hash(same)
    assert config_hash(base) != config_hash(other)


def test_cli_flags_are_not_strict_but_cfg_options_are():
    cfg = apply_overrides({"a": 1}, {"dataset.root": "/x"}, [])
    assert cfg["dataset"]["root"] == "/x"
    with pytest.raises(UserError):
        apply_overrides({"a": 1}, {}, ["b=2"])
