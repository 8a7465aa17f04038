"""A method's options as a table: what `ltbench list methods --options NAME` prints and what the
option tables of docs/methods/ are generated from (docs/methods/make_option_tables.py).

A row is one option: its value and source tags (the method's recipe without a dataset, or a
dataset's and backbone's when given), what it takes, its meaning, and the per_dataset /
per_backbone sections of the method's YAML that change it. Only the options that are the
method's own, or that its YAML sets, are listed: the common ones (seed, runtime, ...) are the
same for every method (``ltbench list methods --options common``, ``common_rows``).
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ltbench.config.keys import backbone_key, get_dotted, leaves
from ltbench.config.layers import PER_BACKBONE, PER_DATASET, base_layers, method_files
from ltbench.config.options import MISSING, Option, Section
from ltbench.config.resolution import Merger, RunRequest, declared_defaults, resolve_run, run_schema
from ltbench.core import registry

COMMON_NAME = "common"


def show(value) -> str:
    """A value as YAML writes it: true, null, 1.0e-05, [a, b], {type: ce}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {show(item)}" for key, item in value.items()) + "}"
    return str(value)


def tag_text(tags) -> str:
    return ", ".join(tags) if tags else "-"


@dataclass
class OptionRow:
    key: str
    value: object
    tags: Tuple[str, ...]
    allowed: str
    help: str
    why: str = ""  # the comment of the YAML value: why it is what it is
    # (section, value, tags) of each per_dataset / per_backbone section that sets it
    overrides: List[Tuple[str, object, Tuple[str, ...]]] = field(default_factory=list)


def _common_keys(method_cls) -> set:
    base = next((cls for cls in reversed(type.mro(method_cls)) if "options" in cls.__dict__), None)
    return {key for key, _ in run_schema(base).walk()} if base is not None else set()


def _overrides(files, dotted: str) -> List[Tuple[str, object, Tuple[str, ...]]]:
    """(section, value, tags) of each per_dataset / per_backbone section that sets `dotted`; a
    section set by several files (a variant's over its `_base_`'s) shows the value that wins: the
    files come in merge order, the later one winning."""
    found = {}
    keys = tuple(dotted.split("."))
    for kind in (PER_DATASET, PER_BACKBONE):
        for doc, inside, section in files.sections(kind):
            if not isinstance(section, dict):
                continue
            nested = [(inside, section)] + [(inside + (PER_BACKBONE, str(name)), values or {})
                                            for name, values in (section.get(PER_BACKBONE) or {}).items()
                                            if kind == PER_DATASET]
            for where, values in nested:
                value = get_dotted(values, dotted, MISSING)
                if value is not MISSING:
                    note = doc.note(where + keys)
                    label = ".".join(part for part in where if part != PER_DATASET)
                    found[label] = (label, value, note.tags if note else ())
    return list(found.values())


def _yaml_keys(files) -> set:
    keys = set()
    for layer in files.top_layers():
        keys.update(key for key, _ in leaves(layer.values))
    for kind in (PER_DATASET, PER_BACKBONE):
        for _, _, section in files.sections(kind):
            if isinstance(section, dict):
                keys.update(key for key, _ in leaves({k: v for k, v in section.items() if k != PER_BACKBONE}))
                for values in (section.get(PER_BACKBONE) or {}).values():
                    keys.update(key for key, _ in leaves(values or {}))
    return keys


def _listed(schema: Section, own: set, set_by_yaml: set) -> List[Tuple[str, Option]]:
    rows = []
    for key, option in schema.walk():
        if key in own or key in set_by_yaml or (option.is_spec and any(k.startswith(key + ".") for k in set_by_yaml)):
            rows.append((key, option))
    return rows


def option_rows(method: str, dataset: Optional[str] = None, backbone: Optional[str] = None) -> List[OptionRow]:
    """The rows of `method`'s option table; with a dataset, its resolved values for that dataset
    (and backbone), else the method's recipe before any per_dataset / per_backbone section."""
    method_cls = registry.get(registry.METHODS, method)
    files = method_files(method)
    if dataset is not None:
        resolved = resolve_run(RunRequest(method, dataset, backbone=backbone))
        schema, config, origins = resolved.schema, resolved.config, resolved.origins
    else:
        schema = run_schema(method_cls)
        merger = Merger(schema, method)
        for layer in (declared_defaults(schema), *base_layers(), *files.top_layers()):
            merger.merge(layer)
        config, origins = merger.config, merger.origins
    common = _common_keys(method_cls)
    own = {key for key, _ in schema.walk() if not key.startswith("dataset.")} - common
    rows = []
    for key, option in _listed(schema, own, _yaml_keys(files)):
        origin = origins.of(key)
        rows.append(OptionRow(key, get_dotted(config, key, MISSING), origin.tags if origin else (), option.allowed(),
                              option.help, origin.comment if origin else "",
                              [] if dataset is not None else _overrides(files, key)))
    return rows


def common_rows(base) -> List[OptionRow]:
    """The options every method has (those of `base`, ``Method``), with defaults.yaml's values."""
    schema = run_schema(base)
    merger = Merger(schema)
    for layer in (declared_defaults(schema), *base_layers()):
        merger.merge(layer)
    rows = []
    for key, option in schema.walk():
        origin = merger.origins.of(key)
        rows.append(OptionRow(key, get_dotted(merger.config, key, MISSING), origin.tags if origin else (),
                              option.allowed(), option.help, origin.comment if origin else ""))
    return rows


def override_text(overrides) -> str:
    return "; ".join(f"{where}: {show(value)}" + (f" [{tag_text(tags)}]" if tags else "")
                     for where, value, tags in overrides)


def text_table(method: str, rows: List[OptionRow], dataset: Optional[str] = None, backbone: Optional[str] = None) -> str:
    """The table `ltbench list methods --options` prints."""
    what = f"on {dataset}" + (f" with {backbone_key(backbone)}" if backbone else "") if dataset else \
        "before its per_dataset / per_backbone sections (--dataset D shows a dataset's values)"
    header = ("option", "value", "source", "allowed", "meaning")
    body = [(row.key, "(no value)" if row.value is MISSING else show(row.value), tag_text(row.tags), row.allowed,
             row.help) for row in rows]
    widths = [min(max(len(line[i]) for line in [header] + body), cap) for i, cap in enumerate((34, 24, 12, 44, 200))]

    def line(cells):
        return "  ".join(cell.ljust(width) if i < 4 else cell for i, (cell, width) in enumerate(zip(cells, widths)))

    out = [f"{method}: {len(rows)} options, {what}", line(header)]
    for row, cells in zip(rows, body):
        out.append(line(cells).rstrip())
        if row.overrides:
            out.append(" " * (widths[0] + 2) + "per " + override_text(row.overrides))
    return "\n".join(out)


def markdown_table(rows: List[OptionRow]) -> str:
    """The table a docs page shows: value, source, what it takes and means, and what each
    per_dataset / per_backbone section changes."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| option | value | source | allowed | meaning | why this value (the YAML's comment) | "
             "per dataset / backbone |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        value = "(no value)" if row.value is MISSING else f"`{show(row.value)}`"
        lines.append(f"| `{row.key}` | {cell(value)} | {cell(tag_text(row.tags))} | {cell(row.allowed)} | "
                     f"{cell(row.help)} | {cell(row.why)} | {cell(override_text(row.overrides))} |")
    return "\n".join(lines)


def differing_rows(method: str, base: str) -> List[OptionRow]:
    """The rows of `method` whose value or overrides differ from `base`'s (a variant's table)."""
    base_rows = {row.key: row for row in option_rows(base)}
    return [row for row in option_rows(method)
            if row.key not in base_rows or (base_rows[row.key].value, base_rows[row.key].overrides)
            != (row.value, row.overrides)]
