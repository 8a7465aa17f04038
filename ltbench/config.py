"""Resolve one run's configuration.

Order, later wins: benchmarks/defaults.yaml <- benchmarks/datasets/<D>.yaml <- the method's
defaults (class attribute ``default_config``, then benchmarks/methods/<M>.yaml without its
``per_dataset`` / ``per_backbone`` sections) <- ``per_dataset[<D>]`` <- ``per_backbone[<B>]`` <-
``per_dataset[<D>].per_backbone[<B>]`` <- CLI flags <- ``--cfg-options``. <B> is the model part of
the run's backbone (``RN50`` for ``RN50:openai``), as given by the CLI or else by the YAML; a
method may key its per_backbone sections by another config entry with ``per_backbone_from:
backbone.vision``.
The result is a plain dict; it is saved in the run record, and its hash (without the keys that
cannot change results, such as paths and worker counts) identifies the run.
"""
import copy
import hashlib
import json
import os
import re
from pathlib import Path

import yaml

from ltbench.errors import UserError, close_matches_hint

# Keys that do not change a run's numbers: left out of the config hash (the seed is kept apart
# so that seeds of one configuration group together in tables).
NON_IDENTITY_KEYS = ("seed", "runtime", "dataset.root", "dataset.split_dir")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml_text(text: str, source: str):
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{where}: invalid YAML: {problem}") from None


def load_yaml(path: Path) -> dict:
    data = parse_yaml_text(Path(path).read_text(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return data


def benchmarks_dir() -> Path:
    """benchmarks/ of this checkout, or $LTBENCH_BENCHMARKS."""
    env = os.environ.get("LTBENCH_BENCHMARKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "benchmarks"


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_cfg_option(option: str):
    """'a.b=value' -> (['a', 'b'], parsed value). Values are YAML: 3, 1e-3, true, null, [a, b]."""
    key, sep, raw = option.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--cfg-options: expected KEY=VALUE such as train.lr=0.01, got '{option}'")
    return key.split("."), parse_yaml_text(raw, f"--cfg-options {key}") if raw != "" else ""


def set_dotted(cfg: dict, keys, value, strict: bool = True):
    """Set cfg[k1][k2]... = value. Strict: the key must already exist (typos do not pass silently)."""
    node = cfg
    for depth, key in enumerate(keys):
        path = ".".join(keys[: depth + 1])
        last = depth == len(keys) - 1
        if not isinstance(node, dict):
            raise UserError(f"config key '{'.'.join(keys[:depth])}' is not a mapping, cannot set '{path}'")
        if key not in node and strict:
            siblings = [".".join(keys[:depth] + [k]) for k in node]
            raise UserError(
                f"unknown config key '{path}'{close_matches_hint(path, siblings)}; "
                "new keys belong in the method's YAML under benchmarks/methods/"
            )
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def get_dotted(cfg: dict, dotted: str, default=None):
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def backbone_key(backbone: str) -> str:
    """The per_backbone key of a backbone label: its model name ('RN50:openai' -> 'RN50')."""
    text = str(backbone)
    if text.startswith("timm:"):
        return text.split(":")[1]
    return text.partition(":")[0]


def _method_yaml(name: str, root: Path, seen=()) -> dict:
    """benchmarks/methods/<name>.yaml, on top of the file its `_base_` key names (variants of one
    method family share one file of settings and override a few)."""
    path = root / "methods" / f"{name}.yaml"
    if not path.exists():
        return {}
    data = load_yaml(path)
    base = data.pop("_base_", None)
    if base is None:
        return data
    if base in seen or base == name or not (root / "methods" / f"{base}.yaml").exists():
        raise UserError(f"{path}: _base_ '{base}' must name another file of {root / 'methods'} "
                        "without a cycle")
    return deep_merge(_method_yaml(base, root, seen + (name,)), data)


def method_defaults(method_name: str, method_cls, dataset_name: str, root: Path, backbone: str = None) -> dict:
    defaults = copy.deepcopy(getattr(method_cls, "default_config", {}) or {})
    defaults = deep_merge(defaults, _method_yaml(method_name, root))
    per_dataset = defaults.pop("per_dataset", None) or {}
    per_backbone = defaults.pop("per_backbone", None) or {}
    dataset_section = copy.deepcopy(per_dataset.get(dataset_name) or {})
    dataset_per_backbone = dataset_section.pop("per_backbone", None) or {}
    defaults = deep_merge(defaults, dataset_section)
    if backbone is not None:
        key = backbone_key(backbone)
        defaults = deep_merge(defaults, per_backbone.get(key) or {})
        defaults = deep_merge(defaults, dataset_per_backbone.get(key) or {})
    return defaults


def _dataset_level_config(dataset_name: str, root: Path) -> dict:
    cfg = load_yaml(root / "defaults.yaml") if (root / "defaults.yaml").exists() else {}
    dataset_file = root / "datasets" / f"{dataset_name}.yaml"
    if dataset_file.exists():
        cfg = deep_merge(cfg, load_yaml(dataset_file))
    cfg.setdefault("dataset", {})["name"] = dataset_name
    return cfg


def resolve_config(method_name, method_cls, dataset_name, cli_overrides=None, cfg_options=()):
    """The fully resolved config of one run (see the module docstring for the order)."""
    root = benchmarks_dir()

    def resolve(backbone):
        cfg = _dataset_level_config(dataset_name, root)
        cfg = deep_merge(cfg, method_defaults(method_name, method_cls, dataset_name, root, backbone))
        cfg["method"] = method_name
        cfg["dataset"]["name"] = dataset_name
        return apply_overrides(cfg, cli_overrides, cfg_options)

    # The backbone picks the per_backbone section, and the CLI may change the backbone: resolve
    # once to learn it, then again with that backbone's section in place. A method whose recipe
    # depends on another backbone (TACKLE's vision model) names it in `per_backbone_from`.
    first = resolve(None)
    backbone = get_dotted(first, first.get("per_backbone_from") or "backbone.clip")
    return resolve(backbone)


def resolve_dataset_config(dataset_name, cli_overrides=None, cfg_options=()):
    """defaults.yaml <- datasets/<D>.yaml <- CLI: what a dataset tool (data check) needs."""
    cfg = _dataset_level_config(dataset_name, benchmarks_dir())
    return apply_overrides(cfg, cli_overrides, cfg_options)


def apply_overrides(cfg: dict, cli_overrides=None, cfg_options=()) -> dict:
    """CLI flags (dotted key -> value, None = not given), then strict --cfg-options."""
    for dotted, value in (cli_overrides or {}).items():
        if value is not None:
            set_dotted(cfg, dotted.split("."), value, strict=False)
    for option in cfg_options or ():
        keys, value = parse_cfg_option(option)
        set_dotted(cfg, keys, value, strict=True)
    return cfg


def config_hash(cfg: dict) -> str:
    """SHA-256 of the config without the keys that cannot change results."""
    identity = copy.deepcopy(cfg)
    for dotted in NON_IDENTITY_KEYS:
        *parents, last = dotted.split(".")
        node = get_dotted(identity, ".".join(parents)) if parents else identity
        if isinstance(node, dict):
            node.pop(last, None)
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def related_method_config(method_name: str, cfg: dict, cfg_options=()) -> dict:
    """The config ``method_name`` resolves to for this run's dataset (with its options), backbone,
    seed and runtime: for a method one run builds on (an ensemble member, a pseudo-label teacher),
    configured exactly as its own run would be, so that stage checkpoints shared by hash (BALLAD's
    phase A) are found again."""
    from ltbench import registry

    method_cls = registry.get(registry.METHODS, method_name, listing="methods")
    overrides = {"backbone.clip": cfg["backbone"]["clip"], "seed": cfg["seed"],
                 "dataset": copy.deepcopy(cfg["dataset"]), "runtime": copy.deepcopy(cfg["runtime"])}
    return resolve_config(method_name, method_cls, cfg["dataset"]["name"], overrides, cfg_options)
