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

A dataset's file, datasets/<D>.yaml, is looked up along the config search path
(``config_search_path``: $LTBENCH_CONFIG_PATH, the folders plug-ins add with ``add_config_path``,
then the config folder); the files found are merged, the earlier ones winning.
"""
import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Tuple

import yaml

from ltbench.core import registry
from ltbench.core.errors import UserError, close_matches_hint

DEFAULTS_FILE = "defaults.yaml"
# Folders searched for datasets/<name>.yaml before the config folder, separated as in $PATH.
CONFIG_PATH_ENV = "LTBENCH_CONFIG_PATH"
# The section of a dataset's YAML that defines a split-file dataset (ltbench.data.datasets.
# definitions): what the data is, not a setting of a run, so it stays out of the run's config.
DATASET_DEFINITION_KEY = "split_files"

# Keys that do not change a run's numbers: left out of the config hash (the seed is kept apart
# so that seeds of one configuration group together in tables).
# dataset.allow_duplicates only lets a run with duplicate split lines through; any run that
# passes without it reads the same data with it.
NON_IDENTITY_KEYS = ("seed", "runtime", "dataset.root", "dataset.split_dir", "dataset.allow_duplicates")


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


# path -> (its text, the mapping parsed from it): one resolve reads the same few files several
# times, and PyYAML's pure-Python parser costs milliseconds a file. Keyed by the text itself, not
# by a modification time, which a file rewritten within the same clock tick would share.
_parsed_yaml = {}


def load_yaml(path: Path) -> dict:
    """The mapping a YAML file holds ({} when empty), parsed once while its text is the same; the
    caller owns the copy it gets."""
    text = Path(path).read_text()
    cached = _parsed_yaml.get(str(path))
    if cached is None or cached[0] != text:
        data = parse_yaml_text(text, str(path))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping of config keys at the top level")
        cached = _parsed_yaml[str(path)] = (text, data)
    return copy.deepcopy(cached[1])


def benchmarks_dir(check: bool = True) -> Path:
    """The config folder: $LTBENCH_BENCHMARKS, or the package ``ltbench.benchmarks`` (the
    repository's benchmarks/ folder, shipped inside the wheel; docs/architecture.md, "Layout"). With `check`, a folder without
    defaults.yaml is a one-line error: resolving a run without the defaults would give a config
    missing required keys."""
    env = os.environ.get("LTBENCH_BENCHMARKS")
    if env:
        root, origin = Path(env).expanduser(), "$LTBENCH_BENCHMARKS"
    else:
        try:
            root = Path(str(resources.files("ltbench.benchmarks"))).resolve()
        except ModuleNotFoundError:
            raise UserError("ltbench's config package (ltbench.benchmarks) is not installed; "
                            "reinstall ltbench (pip install .) or set LTBENCH_BENCHMARKS to a config folder") from None
        origin = "the installed package ltbench.benchmarks"
    if check and not (root / DEFAULTS_FILE).is_file():
        raise UserError(f"config folder {root} (from {origin}) has no {DEFAULTS_FILE}; point LTBENCH_BENCHMARKS "
                        "at a folder laid out like ltbench's benchmarks/ (defaults.yaml, datasets/, methods/) "
                        "or reinstall ltbench")
    return root


_added_config_dirs: List[Path] = []


def add_config_path(folder) -> Path:
    """Search `folder` (laid out like benchmarks/: ``datasets/<name>.yaml``) for dataset files,
    before ltbench's own config folder: how a plug-in package ships YAML beside its code (as
    open_clip's ``add_model_config``). Returns the folder; adding one twice changes nothing."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"add_config_path: {path} is not a folder; pass the folder that holds datasets/")
    if path not in _added_config_dirs:
        _added_config_dirs.append(path)
    return path


def config_search_path() -> List[Path]:
    """Where datasets/<name>.yaml is looked for, first wins: each folder of $LTBENCH_CONFIG_PATH
    (separated by os.pathsep), the folders plug-ins added with ``add_config_path`` (their
    entry points are imported first), then the config folder (``benchmarks_dir``)."""
    registry.load_plugins()
    user = [Path(part).expanduser() for part in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if part]
    for folder in user:
        if not folder.is_dir():  # a mistyped folder would hide its datasets without a word
            raise UserError(f"${CONFIG_PATH_ENV} names {folder}, which is not a folder; fix or unset it")
    folders = user + list(_added_config_dirs) + [benchmarks_dir(check=False)]
    return list(dict.fromkeys(folders))


def config_files(kind: str, name: str) -> List[Path]:
    """Every ``<folder>/<kind>/<name>.yaml`` along the config search path, the first winning."""
    return [path for path in (folder / kind / f"{name}.yaml" for folder in config_search_path()) if path.is_file()]


def dataset_yaml(dataset_name: str) -> dict:
    """The dataset's YAML: every datasets/<name>.yaml of the search path merged, the earlier ones
    winning ({} when there is none)."""
    merged = {}
    for path in reversed(config_files("datasets", dataset_name)):
        merged = deep_merge(merged, load_yaml(path))
    return merged


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
            if strict:
                _check_section_replacement(path, node.get(key), value)
            node[key] = value
        else:
            node = node.setdefault(key, {})


def _check_section_replacement(path: str, old, new):
    """A config section (a mapping of settings; a spec with a 'type' key may be replaced whole)
    cannot be replaced by a value or by a mapping that leaves out some of its keys: everything
    after would miss them."""
    if not isinstance(old, dict) or not old or "type" in old:
        return
    if not isinstance(new, dict):
        raise UserError(f"{path}={new!r}: {path} is a section of settings ({', '.join(list(old)[:4])}, ...); "
                        f"set {path}.KEY=VALUE instead")
    left_out = [key for key in old if key not in new]
    if left_out:
        example = next(iter(new), None)
        hint = f"set {path}.{example}={new[example]!r}" if example is not None else f"set {path}.KEY=VALUE"
        raise UserError(f"{path}={{...}} would replace the whole section {path}, leaving out "
                        f"{', '.join(left_out[:4])}{', ...' if len(left_out) > 4 else ''}; {hint} instead")


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


def dataset_defaults(dataset_name: str) -> dict:
    """The `dataset` section of datasets/<name>.yaml ({} for a dataset without one)."""
    section = dataset_yaml(dataset_name).get("dataset")
    return copy.deepcopy(section) if isinstance(section, dict) else {}


def _dataset_level_config(dataset_name: str, root: Path) -> dict:
    cfg = load_yaml(root / DEFAULTS_FILE)
    dataset_file = dataset_yaml(dataset_name)
    dataset_file.pop(DATASET_DEFINITION_KEY, None)
    cfg = deep_merge(cfg, dataset_file)
    cfg.setdefault("dataset", {})["name"] = dataset_name
    return cfg


@dataclass(frozen=True)
class RunRequest:
    """What one run is asked for: the one input of ``resolve`` for the CLI, suites and runs that
    build on other methods (ensemble members, pseudo-label teachers).

    overrides: dotted key -> value that replace what the YAML says without being checked (the
    CLI's flags: data root, device, ...; None means not given). options: (dotted key, value)
    pairs applied after them, strictly: a key must exist, so a typo is an error (--cfg-options,
    a suite's cfg_options).
    """

    method: str
    dataset: str
    backbone: Optional[str] = None
    seed: Optional[int] = None
    overrides: Mapping[str, object] = field(default_factory=dict)
    options: Tuple[Tuple[str, object], ...] = ()


def parse_cfg_options(options: Iterable[str]) -> Tuple[Tuple[str, object], ...]:
    """'a.b=value' strings (values in YAML) -> RunRequest.options pairs."""
    pairs = []
    for option in options or ():
        keys, value = parse_cfg_option(option)
        pairs.append((".".join(keys), value))
    return tuple(pairs)


def runtime_overrides(data_root=None, split_dir=None, device=None, progress=True, save_logits=False) -> dict:
    """The config keys that `run` and `sweep` flags set (None: not given, the YAML's value stays)."""
    return {
        "dataset.root": data_root,
        "dataset.split_dir": split_dir,
        "runtime.device": device,
        "runtime.progress": None if progress else False,
        "runtime.save_logits": save_logits or None,  # True or a format name (records/saved_logits.py)
    }


def resolve(request: RunRequest) -> dict:
    """The fully resolved config of one run: the method and dataset must be registered."""
    method_cls = registry.get(registry.METHODS, request.method)
    registry.get(registry.DATASETS, request.dataset)
    return check_fixed_rules(check_settings(resolve_config(request, method_cls)))


# Numeric settings, by key name wherever they appear (train.lr, phase_b.lr, ...): (kind, lowest,
# highest, what the value means). kind "int": a whole number; "number": any finite number.
# None bounds are open; a key listed in NULLABLE may also be null (its default then applies).
NUMERIC_SETTINGS = {
    "epochs": ("int", 1, None, "training epochs"),
    "iterations": ("int", 1, None, "training iterations"),
    "warmup_iterations": ("int", 0, None, "warmup iterations"),
    "warmup_epochs": ("number", 0, None, "warmup epochs"),
    "batch_size": ("int", 1, None, "images per step"),
    "eval_batch_size": ("int", 1, None, "images per evaluation batch"),
    "grad_accum_steps": ("int", 1, None, "steps per optimizer update"),
    "log_interval": ("int", 1, None, "steps between progress updates"),
    "lr": ("number", 0, None, "learning rate, > 0"),
    "weight_decay": ("number", 0, None, "weight decay"),
    "momentum": ("number", 0, 1, "SGD momentum"),
    "cosine_cycles": ("number", 0, None, "cosine cycles, > 0"),
    "seed": ("int", 0, None, "random seed"),
    "imbalance_ratio": ("number", 1, None, "largest / smallest class size"),
    "num_workers": ("int", 0, None, "loader worker processes, or auto"),
    "max_per_class": ("int", 1, None, "images of the largest class"),
    "test_per_class": ("int", 1, None, "test images per class"),
    "val_per_class": ("int", 1, None, "val images per class"),
}
# Strictly above the lowest value (0 is not a learning rate).
EXCLUSIVE_LOWEST = ("lr", "cosine_cycles")
NULLABLE = ("epochs", "iterations", "warmup_iterations")
# Keys that may also be 'auto' (resolved on the machine that runs: runtime.num_workers, from the
# cores per process, core/cpus.py).
AUTO_SETTINGS = ("num_workers",)
# Where a documented value goes below the general range: BALLAD's (and TACKLE's teacher's)
# phase_a.epochs=0 skips phase A.
SPECIAL_RANGES = {"phase_a.epochs": ("int", 0, None, "phase A epochs; 0 skips phase A")}
# Sections whose keys are not settings of this run (a method's per-dataset tables are resolved
# away before this check; these hold other runs' option strings or free-form data).
UNCHECKED_SECTIONS = ("per_dataset", "per_backbone", "reported")


def _setting_problem(value, kind, lowest, highest, exclusive_lowest) -> bool:
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return True
    if kind == "int" and not isinstance(value, int):
        return True
    if lowest is not None and (value < lowest or (exclusive_lowest and value == lowest)):
        return True
    return highest is not None and value > highest


def _allowed_text(kind, lowest, highest, exclusive_lowest, meaning, nullable) -> str:
    what = "a whole number" if kind == "int" else "a finite number"
    if lowest is not None and highest is not None:
        bounds = f" from {lowest:g} to {highest:g}"
    elif lowest is not None:
        bounds = f" {'>' if exclusive_lowest else '>='} {lowest:g}"
    else:
        bounds = ""
    return f"{what}{bounds}{' or null' if nullable else ''} ({meaning})"


# Config keys that name how ltbench builds what no option changes yet: one value each, present
# so that records made before the rule (open_clip's nn.GELU for OpenAI weights; torch bicubic
# for in-memory images) never share a config hash with records made after it.
FIXED_RULES = {
    "backbone.activation": ("pretrained", "as the weights were trained; a checkpoint of OpenAI "
                                          "weights takes a '-quickgelu' model name"),
    "resize": ("pil", "images are resized with PIL's filters, in-memory ones too"),
}


def check_fixed_rules(cfg: dict) -> dict:
    """The keys of FIXED_RULES at their one value, before any work. Returns ``cfg``."""
    for key, (rule, meaning) in FIXED_RULES.items():
        value = get_dotted(cfg, key, rule)
        if value != rule:
            raise UserError(f"{key} '{value}': the only rule is '{rule}' ({meaning})")
    return cfg


def check_settings(cfg: dict, prefix: str = "") -> dict:
    """Every numeric setting of a resolved config in its range (NUMERIC_SETTINGS), before any work:
    a UserError naming the key, the value and the allowed range. Returns ``cfg``."""
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            if key not in UNCHECKED_SECTIONS:
                check_settings(value, f"{dotted}.")
            continue
        rule = SPECIAL_RANGES.get(dotted) or SPECIAL_RANGES.get(".".join(dotted.split(".")[-2:])) \
            or NUMERIC_SETTINGS.get(key)
        if rule is None or (value is None and key in NULLABLE) or (value == "auto" and key in AUTO_SETTINGS):
            continue
        kind, lowest, highest, meaning = rule
        exclusive = key in EXCLUSIVE_LOWEST
        if _setting_problem(value, kind, lowest, highest, exclusive):
            allowed = _allowed_text(kind, lowest, highest, exclusive, meaning, key in NULLABLE)
            shown = value if not isinstance(value, str) else repr(value)
            raise UserError(f"{dotted}={shown}: expected {allowed}; set {dotted}=VALUE in --cfg-options "
                            "(or the YAML)")
    return cfg


def resolve_config(request: RunRequest, method_cls) -> dict:
    """The config of `request` with `method_cls`'s defaults (see the module docstring for the order)."""
    overrides = {"backbone.clip": request.backbone, "seed": request.seed, **request.overrides}
    root = benchmarks_dir()

    def resolved_with(backbone):
        cfg = _dataset_level_config(request.dataset, root)
        cfg = deep_merge(cfg, method_defaults(request.method, method_cls, request.dataset, root, backbone))
        cfg["method"] = request.method
        cfg["dataset"]["name"] = request.dataset
        return apply_overrides(cfg, overrides, request.options)

    # The backbone picks the per_backbone section, and the CLI may change the backbone: resolve
    # once to learn it, then again with that backbone's section in place. A method whose recipe
    # depends on another backbone (TACKLE's vision model) names it in `per_backbone_from`.
    first = resolved_with(None)
    return resolved_with(get_dotted(first, first.get("per_backbone_from") or "backbone.clip"))


def resolve_dataset_config(dataset_name, overrides=None, options=()):
    """defaults.yaml <- datasets/<D>.yaml <- CLI: what a dataset tool (data check) needs."""
    cfg = _dataset_level_config(dataset_name, benchmarks_dir())
    return apply_overrides(cfg, overrides, options)


def apply_overrides(cfg: dict, overrides=None, options=()) -> dict:
    """Unchecked overrides (dotted key -> value, None = not given), then strict option pairs."""
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(cfg, dotted.split("."), value, strict=False)
    for dotted, value in options or ():
        set_dotted(cfg, dotted.split("."), value, strict=True)
    return cfg


# Settings added after records were written: left out of the hash while at their default, so
# the hash of every config that does not use them stays what it was.
HASH_NEUTRAL_DEFAULTS = {"jpeg_draft": False, "gpu_jpeg": False, "deterministic": False}


def config_hash(cfg: dict) -> str:
    """SHA-256 of the config without the keys that cannot change results."""
    identity = copy.deepcopy(cfg)
    for key, default in HASH_NEUTRAL_DEFAULTS.items():
        if key in identity and identity[key] == default:
            identity.pop(key)
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
    phase A) are found again. cfg_options: 'KEY=VALUE' strings for that method's config."""
    return resolve(RunRequest(
        method=method_name, dataset=cfg["dataset"]["name"], backbone=cfg["backbone"]["clip"], seed=cfg["seed"],
        overrides={"dataset": copy.deepcopy(cfg["dataset"]), "runtime": copy.deepcopy(cfg["runtime"])},
        options=parse_cfg_options(cfg_options)))
