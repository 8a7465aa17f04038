"""Suites: a grid of (method, dataset, backbone, seed) runs declared in YAML, for `ltbench sweep`.

    description: BALLAD, Tables 1 and 2     # optional; shown by `ltbench sweep --dry-run`
    methods: [zeroshot_clip, ballad]        # required
    datasets: [imagenet_lt, places_lt]      # required
    backbones: [RN50:openai, ViT-B-16:openai]  # optional; default: each method's configured one
    seeds: [0, 1, 2]                        # optional; default: the configured seed
    cfg_options: {train.epochs: 5}          # optional; dotted config keys, as --cfg-options
    overrides:                              # optional; more cfg_options for the entries they match
      - method: linear_probe                #   method / dataset / backbone: a name or a list
        cfg_options: {train.lr: 0.01}

The grid is every combination, methods outermost, in the order written. An entry's options are
the suite's cfg_options, then those of every override that matches it, in file order (later
wins). Names are checked when an entry runs, not here: a suite may name a method that is not
registered yet, and only that method's entries fail.

A suite of several grids lists them as ``parts``, run one after another in the order written:

    description: LIFT and LIFT+, then their PEFT comparison
    backbones: [ViT-B-16:openai]            # optional: what every part starts from
    cfg_options: {text.templates: single}   # optional: for every part's entries, before its own
    parts:
      - description: main results           # optional
        methods: [lift, lift_plus]          # a part gives its own or takes the top level's
        datasets: [imagenet_lt, places_lt]
      - methods: [lift_plus]
        datasets: [imagenet_lt]
        cfg_options: {peft.type: lora}
        overrides: [...]                    # overrides belong to a part

so a suite can hold settings that no single grid reaches (the same runs with and without TTE, or
one run per PEFT type).
"""
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import List, Optional, Tuple

from ltbench.config import RunRequest, benchmarks_dir, load_yaml
from ltbench.core.errors import UserError, close_matches_hint

GRID_KEYS = ("methods", "datasets", "backbones", "seeds")
SUITE_KEYS = ("description", *GRID_KEYS, "cfg_options", "overrides", "parts")
PART_KEYS = ("description", *GRID_KEYS, "cfg_options", "overrides")
MATCH_KEYS = {"method": "methods", "dataset": "datasets", "backbone": "backbones"}
DOTTED_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class SweepEntry:
    """One run of a suite: what `ltbench run` gets as --method, --dataset, --backbone, --seed, --cfg-options."""

    method: str
    dataset: str
    backbone: Optional[str]  # None: the method's configured backbone
    seed: Optional[int]  # None: the configured seed
    cfg_options: Tuple[Tuple[str, object], ...] = ()  # (dotted key, value), as RunRequest.options

    def request(self, overrides=None, options=()) -> RunRequest:
        """The RunRequest of this entry; `options` (the command line's) come after the suite's."""
        origin = "the suite's cfg_options or --cfg-options" if self.cfg_options else "--cfg-options"
        return RunRequest(method=self.method, dataset=self.dataset, backbone=self.backbone, seed=self.seed,
                          overrides=dict(overrides or {}), options=(*self.cfg_options, *options), options_origin=origin)

    @property
    def label(self) -> str:
        backbone = self.backbone or "configured backbone"
        seed = f"seed {self.seed}" if self.seed is not None else "configured seed"
        return f"{self.method} on {self.dataset} ({backbone}, {seed})"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    entries: Tuple[SweepEntry, ...]


def suites_dir() -> Path:
    return benchmarks_dir() / "suites"


def find_named_yaml(name_or_path: str, folder: Path, what: str) -> Path:
    """A YAML file given by path, or by name in `folder` (a suite in benchmarks/suites/, a protocol
    in benchmarks/protocols/); else a one-line UserError naming the close matches."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = folder / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise UserError(f"{what} not found: {name_or_path} (nor {named})"
                    f"{close_matches_hint(path.stem, known) if known else ''}")


def find_suite(name_or_path: str) -> Path:
    """A suite file given by path, or by name in benchmarks/suites/ (`ballad_table`)."""
    return find_named_yaml(name_or_path, suites_dir(), "suite file")


def _names(path, key, value, what) -> List[str]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{path}: {key}: expected a non-empty list of {what}s, e.g. [a, b]")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise UserError(f"{path}: {key}[{index}]: expected a {what} (a string), got {item!r}")
    _no_duplicates(path, key, value)
    return [item.strip() for item in value]


def _seeds(path, value) -> List[int]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{path}: seeds: expected a non-empty list of integers, e.g. [0, 1, 2]")
    for index, item in enumerate(value):
        if not isinstance(item, int) or isinstance(item, bool) or item < 0:
            raise UserError(f"{path}: seeds[{index}]: expected an integer >= 0, got {item!r}")
    _no_duplicates(path, "seeds", value)
    return list(value)


def _no_duplicates(path, key, values):
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise UserError(f"{path}: {key}: {', '.join(repeated)} listed more than once")


def _cfg_options(path, key, value) -> Tuple[Tuple[str, object], ...]:
    """{dotted.key: value} -> (('dotted.key', value), ...): RunRequest.options, applied strictly."""
    if not isinstance(value, dict):
        raise UserError(f"{path}: {key}: expected a mapping of dotted config keys to values, "
                        "e.g. {train.epochs: 5, loss: balanced_softmax}")
    for dotted in value:
        if not isinstance(dotted, str) or not DOTTED_KEY.match(dotted):
            raise UserError(f"{path}: {key}: '{dotted}' is not a dotted config key such as train.lr")
    return tuple(value.items())


def _override(path, index, override, grid, prefix: str = "") -> Tuple[dict, Tuple[str, ...]]:
    """({'method': {...names}, ...}, cfg options) of overrides[index] (of the part at `prefix`)."""
    where = f"{prefix}overrides[{index}]"
    if not isinstance(override, dict):
        raise UserError(f"{path}: {where}: expected a mapping with method / dataset / backbone and cfg_options")
    for key in override:
        if key not in (*MATCH_KEYS, "cfg_options"):
            raise UserError(f"{path}: {where}: unknown key '{key}'"
                            f"{close_matches_hint(str(key), [*MATCH_KEYS, 'cfg_options'])}")
    if "cfg_options" not in override:
        raise UserError(f"{path}: {where}: cfg_options is missing (what to set for the matching entries)")
    match = {}
    for key, grid_key in MATCH_KEYS.items():
        if key not in override:
            continue
        value = override[key]
        names = _names(path, f"{where}.{key}", value if isinstance(value, list) else [value], key)
        listed = grid[grid_key]
        if listed == [None]:
            raise UserError(f"{path}: {where}.{key}: the suite lists no {grid_key} to match")
        for name in names:
            if name not in listed:
                raise UserError(f"{path}: {where}.{key}: '{name}' is not in the suite's {grid_key}"
                                f"{close_matches_hint(name, listed)}")
        match[key] = set(names)
    if not match:
        raise UserError(f"{path}: {where}: give method, dataset or backbone to match "
                        "(options for every entry go in the top-level cfg_options)")
    return match, _cfg_options(path, f"{where}.cfg_options", override["cfg_options"])


def _description(path, key, value) -> str:
    if value is not None and not isinstance(value, str):
        raise UserError(f"{path}: {key}: expected text")
    return (value or "").strip()


def _grid_entries(path, data: dict, inherited: dict, prefix: str = "", common=()) -> List[SweepEntry]:
    """The entries of one grid (a suite, or one of its parts at `prefix`, e.g. 'parts[1].'):
    its keys, else those `inherited` from the top level; `common` cfg_options come first."""
    for key in ("methods", "datasets"):
        if key not in data and key not in inherited:
            raise UserError(f"{path}: {prefix}{key} is missing (a list of {key[:-1]} names)")

    def given(key):
        return data[key] if key in data else inherited[key]

    grid = {
        "methods": _names(path, f"{prefix}methods", given("methods"), "method name"),
        "datasets": _names(path, f"{prefix}datasets", given("datasets"), "dataset name"),
        "backbones": _names(path, f"{prefix}backbones", given("backbones"), "backbone")
        if "backbones" in data or "backbones" in inherited else [None],
        "seeds": _seeds(path, given("seeds")) if "seeds" in data or "seeds" in inherited else [None],
    }
    common = tuple(common) + (_cfg_options(path, f"{prefix}cfg_options", data["cfg_options"])
                              if "cfg_options" in data else ())
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list):
        raise UserError(f"{path}: {prefix}overrides: expected a list of mappings (method / dataset / backbone, "
                        "cfg_options)")
    overrides = [_override(path, index, override, grid, prefix) for index, override in enumerate(overrides)]

    entries = []
    for method, dataset, backbone, seed in product(*(grid[key] for key in GRID_KEYS)):
        values = {"method": method, "dataset": dataset, "backbone": backbone}
        options = list(common)
        for match, extra in overrides:
            if all(values[key] in names for key, names in match.items()):
                options += extra
        entries.append(SweepEntry(method, dataset, backbone, seed, tuple(options)))
    return entries


def _part_entries(path, parts, top: dict) -> List[SweepEntry]:
    if not isinstance(parts, list) or not parts:
        raise UserError(f"{path}: parts: expected a non-empty list of grids (methods, datasets, ...)")
    if "overrides" in top:
        raise UserError(f"{path}: overrides: with parts, each part gives its own overrides")
    inherited = {key: top[key] for key in GRID_KEYS if key in top}
    common = _cfg_options(path, "cfg_options", top["cfg_options"]) if "cfg_options" in top else ()
    entries = []
    for index, part in enumerate(parts):
        prefix = f"parts[{index}]."
        if not isinstance(part, dict):
            raise UserError(f"{path}: parts[{index}]: expected a mapping (methods, datasets, backbones, seeds, "
                            "cfg_options, overrides, description)")
        for key in part:
            if key not in PART_KEYS:
                raise UserError(f"{path}: parts[{index}]: unknown key '{key}'{close_matches_hint(str(key), PART_KEYS)}")
        _description(path, f"{prefix}description", part.get("description"))
        entries += _grid_entries(path, part, inherited, prefix, common)
    return entries


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; every mistake is a one-line UserError naming the file and key."""
    path = Path(path)
    data = load_yaml(path)
    for key in data:
        if key not in SUITE_KEYS:
            raise UserError(f"{path}: unknown key '{key}'{close_matches_hint(str(key), SUITE_KEYS)}")
    description = _description(path, "description", data.get("description"))
    if "parts" in data:
        entries = _part_entries(path, data["parts"], data)
    else:
        entries = _grid_entries(path, data, {})
    return Suite(name=path.stem, path=path, description=description, entries=tuple(entries))
