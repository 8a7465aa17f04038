"""Readable names for several configurations of one method: the options that differ between
them, shortest first (``knn_clip[balanced=true]``), with the config hash only as a last resort.

A table, a comparison, a figure's legend and the report name a row by its method; where one
method (on one backbone and split) was run with several configurations, each row's label adds
the options whose values tell it from the others. Options are compared as the records' resolved
configs hold them (every declared option with its value), without the keys that cannot change
the numbers (the seed, ``runtime.*``, paths: the config hash leaves them out too).
"""
import json
from typing import Dict, List, Mapping, Sequence

from ltbench.config.hashing import NON_IDENTITY_KEYS
from ltbench.config.keys import leaves

MAX_LABEL_OPTIONS = 3  # [ours] beyond, a label names its hash instead: a legend line stays one line
MAX_VALUE_CHARS = 24  # [ours] a longer value (a list of 80 templates, a path) is not a readable name


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _ignored(dotted: str) -> bool:
    return any(dotted == key or dotted.startswith(key + ".") for key in NON_IDENTITY_KEYS)


def _flat(config: Mapping) -> Dict[str, str]:
    return {dotted: _value_text(value) for dotted, value in leaves(config or {}) if not _ignored(dotted)}


def distinguishing_labels(method: str, configs: Mapping[str, Mapping]) -> Dict[str, str]:
    """{config hash: label} for configurations of `method` (hash -> resolved config). One
    configuration: the method's name. Several: ``method[key=value,...]`` with the fewest differing
    options that tell every configuration apart, shortest ``key=value`` first; where no short set of
    readable options does (the configs differ only in long values, or in more than
    MAX_LABEL_OPTIONS options), ``method [hash6]``."""
    hashes = sorted(configs)
    if len(hashes) <= 1:
        return dict.fromkeys(hashes, method)
    flat = {config_hash: _flat(configs[config_hash]) for config_hash in hashes}
    keys = sorted({key for values in flat.values() for key in values})
    differing = [key for key in keys if len({values.get(key, "-") for values in flat.values()}) > 1]
    readable = [key for key in differing
                if all(len(values.get(key, "-")) <= MAX_VALUE_CHARS for values in flat.values())]
    # Shortest first: the option whose longest key=value is shortest, then by name.
    readable.sort(key=lambda key: (max(len(key) + len(values.get(key, "-")) for values in flat.values()), key))
    chosen: List[str] = []
    for key in readable:
        if len(chosen) == MAX_LABEL_OPTIONS:
            break
        if _tells_more_apart(flat, chosen, key):
            chosen.append(key)
        if _all_apart(flat, chosen):
            break
    labels = {}
    for config_hash in hashes:
        if chosen and _all_apart(flat, chosen):
            parts = ",".join(f"{key}={flat[config_hash].get(key, '-')}" for key in chosen)
            labels[config_hash] = f"{method}[{parts}]"
        else:
            labels[config_hash] = f"{method} [{config_hash[:6]}]"
    return labels


def _signature(values: Mapping[str, str], keys: Sequence[str]) -> tuple:
    return tuple(values.get(key, "-") for key in keys)


def _all_apart(flat: Mapping[str, Mapping[str, str]], keys: Sequence[str]) -> bool:
    return len({_signature(values, keys) for values in flat.values()}) == len(flat)


def _tells_more_apart(flat, chosen: Sequence[str], key: str) -> bool:
    before = len({_signature(values, chosen) for values in flat.values()})
    return len({_signature(values, [*chosen, key]) for values in flat.values()}) > before
