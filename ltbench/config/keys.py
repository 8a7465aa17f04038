"""Dotted keys of nested config mappings, merging, and ``--cfg-options KEY=VALUE`` parsing."""
import copy
from typing import Iterable, Tuple

from ltbench.config.yaml_files import parse_yaml_text
from ltbench.core.errors import UserError


def deep_merge(base: dict, override: dict) -> dict:
    """`override` over a copy of `base`: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_dotted(cfg: dict, dotted: str, default=None):
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def leaves(value, prefix: str = ""):
    """(dotted key, value) of every value of a nested mapping that is not itself a non-empty mapping."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from leaves(child, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def parse_cfg_option(option: str):
    """'a.b=value' -> (['a', 'b'], parsed value). Values are YAML: 3, 1e-3, true, null, [a, b]."""
    key, sep, raw = option.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--cfg-options: expected KEY=VALUE such as train.lr=0.01, got '{option}'")
    return key.split("."), parse_yaml_text(raw, f"--cfg-options {key}") if raw != "" else ""


def parse_cfg_options(options: Iterable[str]) -> Tuple[Tuple[str, object], ...]:
    """'a.b=value' strings (values in YAML) -> RunRequest.options pairs."""
    pairs = []
    for option in options or ():
        keys, value = parse_cfg_option(option)
        pairs.append((".".join(keys), value))
    return tuple(pairs)


def backbone_key(backbone: str) -> str:
    """The per_backbone key of a backbone label: its model name ('RN50:openai' -> 'RN50')."""
    text = str(backbone)
    if text.startswith("timm:"):
        return text.split(":")[1]
    return text.partition(":")[0]
