"""Published numbers (benchmarks/reported.yaml) to show beside reproduced ones in tables.

The file has a ``sources`` mapping (key -> citation) and an ``entries`` list, one published number
per entry: dataset, method, backbone (the label a ltbench run of that setting records, or null),
paper_backbone, overall (and many / medium / few where published), split and source; see the
file's header. ``load_reported`` checks every entry and fails with one line naming the file and
the entry; ``reported_for`` finds the entry of one leaderboard row.
"""
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ltbench.config import benchmarks_dir, get_dotted, parse_yaml_text
from ltbench.core.errors import UserError, close_matches_hint

REQUIRED_FIELDS = ("dataset", "method", "backbone", "paper_backbone", "overall", "split", "source")
OPTIONAL_FIELDS = ("paper_method", "many", "medium", "few", "note", "when", "tte")
# tte: whether the published number is with test-time ensembling (true), without (false), or the
# source does not say (unknown). true / false match only rows whose config's tte.enabled is the
# same; unknown matches either and the table says so beside the source.
TTE_VALUES = (True, False, "unknown")
NUMBER_FIELDS = ("overall", "many", "medium", "few")
TEXT_FIELDS = ("dataset", "method", "paper_backbone", "split", "paper_method", "note")
TOP_LEVEL_KEYS = ("sources", "entries")

# The eval splits of ltbench that hold the same images as the split a paper reports on, where
# they differ by name. iNaturalist 2018 results are published on its val file; ltbench's inat2018
# reads that file for both its 'val' and its 'test' split (split_files.files in
# benchmarks/datasets/inat2018.yaml), so an entry reported on 'val' matches runs evaluated on either.
SPLIT_ALIASES: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("inat2018", "val"): ("val", "test"),
}


def default_reported_path() -> Path:
    return benchmarks_dir(check=False) / "reported.yaml"


def eval_splits_for(dataset: str, split: str) -> Tuple[str, ...]:
    """The ltbench eval splits that a number published on `split` of `dataset` stands for."""
    return SPLIT_ALIASES.get((dataset, split), (split,))


def _check_number(value, where: str, field: str) -> float:
    # bool is an int in Python: 'overall: yes' must not read as 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: '{field}' must be a number, got {value!r}")
    if not 0 <= value <= 100:
        raise UserError(f"{where}: '{field}' must be a top-1 accuracy in percent (0-100), got {value!r}")
    return float(value)


def _check_source(value, where: str, sources: Dict[str, str]) -> str:
    keys = value if isinstance(value, list) else [value]
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise UserError(f"{where}: 'source' must be a key of 'sources' or a list of keys, got {value!r}")
    for key in keys:
        if key not in sources:
            raise UserError(f"{where}: unknown source key '{key}'{close_matches_hint(key, sources)}")
    return ", ".join(keys)


def _check_entry(raw, where: str, sources: Dict[str, str]) -> dict:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping of fields, got {raw!r}")
    for field in raw:
        if field not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            hint = close_matches_hint(str(field), REQUIRED_FIELDS + OPTIONAL_FIELDS)
            raise UserError(f"{where}: unknown field '{field}'{hint}")
    for field in REQUIRED_FIELDS:
        if field not in raw:
            raise UserError(f"{where}: missing field '{field}'")
    entry = {field: raw.get(field) for field in REQUIRED_FIELDS + OPTIONAL_FIELDS}
    for field in TEXT_FIELDS:
        value = entry[field]
        if value is None and field in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: '{field}' must be a non-empty string, got {value!r}")
    # null: the paper does not say which backbone; such an entry matches no run.
    if entry["backbone"] is not None and (not isinstance(entry["backbone"], str) or not entry["backbone"].strip()):
        raise UserError(f"{where}: 'backbone' must be a backbone label such as RN50:openai, or null, "
                        f"got {entry['backbone']!r}")
    for field in NUMBER_FIELDS:
        if entry[field] is not None or field == "overall":
            entry[field] = _check_number(entry[field], where, field)
    entry["source"] = _check_source(entry["source"], where, sources)
    entry["when"] = _check_when(entry["when"], where)
    tte = entry["tte"]
    if tte is not None and not (isinstance(tte, bool) or tte == "unknown"):
        raise UserError(f"{where}: 'tte' must be true (with test-time ensembling), false or unknown (the source "
                        f"does not say), got {tte!r}")
    return entry


def _check_when(value, where: str) -> Dict[str, object]:
    """'when': the settings of the published run that change what its number means (CIFAR-LT's
    imbalance ratio), as dotted config keys -> values; a row matches only with the same values."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: 'when' must be a mapping of dotted config keys to values, "
                        f"e.g. {{dataset.imbalance_ratio: 100}}, got {value!r}")
    for key, setting in value.items():
        if not isinstance(key, str) or not key.strip() or key.startswith(".") or key.endswith("."):
            raise UserError(f"{where}: 'when' key {key!r} must be a dotted config key such as dataset.imbalance_ratio")
        if isinstance(setting, (dict, list)):
            raise UserError(f"{where}: 'when' value of {key} must be a number, text or true/false, got {setting!r}")
    return dict(value)


_MISSING = object()


def _settings_match(when: Dict[str, object], config: Optional[dict], tte=None) -> bool:
    if isinstance(tte, bool):
        when = {**when, "tte.enabled": tte}
    if not when:
        return True
    if config is None:
        return False
    return all(get_dotted(config, key, _MISSING) == setting for key, setting in when.items())


def _check_sources(sources, path) -> Dict[str, str]:
    if not isinstance(sources, dict) or not sources:
        raise UserError(f"{path}: 'sources' must be a mapping of source key -> citation")
    for key, citation in sources.items():
        if not isinstance(key, str) or not isinstance(citation, str) or not citation.strip():
            raise UserError(f"{path}: sources: '{key}' must map a text key to a citation, got {citation!r}")
    return sources


def load_reported(path) -> List[dict]:
    """The entries of a reported-numbers file, checked; UserError (one line) on any problem.

    Each entry has every field (absent optional ones None), numbers as floats, and 'source' as
    text: the key, or the keys joined by ', ' (e.g. 'A, B').
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"reported numbers file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read: {error}") from None
    data = parse_yaml_text(text, str(path))
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping with 'sources' and 'entries' at the top level")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise UserError(f"{path}: unknown top-level key '{key}'{close_matches_hint(str(key), TOP_LEVEL_KEYS)}")
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise UserError(f"{path}: missing top-level key '{key}'")
    sources = _check_sources(data["sources"], path)
    if not isinstance(data["entries"], list):
        raise UserError(f"{path}: 'entries' must be a list")

    entries, seen = [], {}
    for index, raw in enumerate(data["entries"]):
        where = f"{path}: entries[{index}]"
        entry = _check_entry(raw, where, sources)
        # Two entries that would give one leaderboard row two numbers (after split aliases).
        for split in eval_splits_for(entry["dataset"], entry["split"]):
            key = (entry["dataset"], entry["method"], entry["backbone"], split,
                   tuple(sorted((name, repr(value)) for name, value in entry["when"].items())), repr(entry["tte"]))
            if key in seen:
                raise UserError(f"{where}: duplicate of entries[{seen[key]}] (dataset {key[0]}, method {key[1]}, "
                                f"backbone {key[2]}, split {entry['split']})")
            seen[key] = index
        entries.append(entry)
    return entries


# Ensembles with CLIP whose paper does not say which CLIP model: 'DeiT-S+CLIP'.
UNNAMED_CLIP_SUFFIX = "+CLIP"


def reported_for(entries: List[dict], dataset: str, method: str, backbone: str, split: str,
                 config: Optional[dict] = None) -> Optional[dict]:
    """The entry published for a run of `method` with `backbone` on `dataset`, evaluated on `split`.

    Exact match on dataset, method and backbone label (see ``_same_backbone`` for ensembles with
    an unnamed CLIP); the split matches through SPLIT_ALIASES; an entry with 'when' settings
    matches only a run whose resolved `config` has them (without a config, never), and an entry
    with tte true / false only a run with that tte.enabled. None when there is none.
    """
    if backbone is None:
        return None
    for entry in entries:
        if (entry["dataset"] == dataset and entry["method"] == method and _same_backbone(entry["backbone"], backbone)
                and split in eval_splits_for(dataset, entry["split"])
                and _settings_match(entry.get("when") or {}, config, entry.get("tte"))):
            return entry
    return None


def _same_backbone(published, run: str) -> bool:
    """Equal labels; a published 'X+CLIP' (an ensemble with a CLIP model the paper does not name)
    matches a run's 'X+<any CLIP label>'."""
    if published is None:
        return False
    if published.endswith(UNNAMED_CLIP_SUFFIX):
        prefix = published[: -len(UNNAMED_CLIP_SUFFIX)] + "+"
        return run.startswith(prefix) and ":" in run[len(prefix):]
    return published == run
