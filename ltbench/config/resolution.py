"""Resolve one run's configuration, once: every layer merged over the declared options, every key
and value checked against them before any work.

The schema of a run is its method class's options (``Method``'s common ones and the method's
own, see ltbench.config.options) with its dataset builder's options in the ``dataset`` section.
The layers (ltbench.config.layers) merge in order; the per_backbone section is chosen by the
backbone the later layers (CLI flags, --cfg-options) will hold, looked up before they are
merged, so nothing is resolved twice. A key no option declares is a one-line error naming the
file and line (or the flag) it came from; so is a value its option does not take.
"""
import copy
from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Optional, Tuple

from ltbench.config.keys import backbone_key, get_dotted, parse_cfg_options
from ltbench.config.layers import (
    METHOD_FILE_DIRECTIVES,
    PER_BACKBONE,
    PER_BACKBONE_FROM,
    PER_DATASET,
    Layer,
    MethodFiles,
    base_layers,
    dataset_layers,
    fixed_layer,
    method_files,
    yaml_layer,
)
from ltbench.config.options import MISSING, Option, Origin, Origins, Section, merged_options, shown, value_error
from ltbench.core import registry
from ltbench.core.errors import UserError, close_matches_hint

DEFAULT_BACKBONE_KEY = "backbone.clip"


@dataclass(frozen=True)
class RunRequest:
    """What one run is asked for: the one input of ``resolve`` for the CLI, suites and runs that
    build on other methods (ensemble members, pseudo-label teachers).

    overrides: dotted key -> value that the CLI's flags set (data root, device, ...; None means
    not given). options: (dotted key, value) pairs applied last (--cfg-options, a suite's
    cfg_options); options_origin names where they came from in errors.
    """

    method: str
    dataset: str
    backbone: Optional[str] = None
    seed: Optional[int] = None
    overrides: Mapping[str, object] = field(default_factory=dict)
    options: Tuple[Tuple[str, object], ...] = ()
    options_origin: str = "--cfg-options"


@dataclass
class Resolved:
    """A resolved config, where each of its values was set (with its source tags), and the
    options it was checked against."""

    config: dict
    origins: Origins
    schema: Section


def runtime_overrides(data_root=None, split_dir=None, device=None, progress=True, save_logits=False) -> dict:
    """The config keys that `run` and `sweep` flags set (None: not given, the YAML's value stays)."""
    return {
        "dataset.root": data_root,
        "dataset.split_dir": split_dir,
        "runtime.device": device,
        "runtime.progress": None if progress else False,
        "runtime.save_logits": save_logits or None,  # True or a format name (records/saved_logits.py)
    }


# Which flag sets each key of runtime_overrides and RunRequest, as errors name them.
FLAG_OF_KEY = {"dataset.root": "--data-root", "dataset.split_dir": "--split-dir", "runtime.device": "--device",
               "runtime.progress": "--no-progress", "runtime.save_logits": "--save-logits",
               "backbone.clip": "--backbone", "seed": "--seed"}


# (method class, id of the builder's options) -> (the options object, the schema): a schema is
# built once per method class and dataset options.
_schemas = {}


def run_schema(method_cls, dataset_builder=None) -> Section:
    """The options of a run of `method_cls` on the dataset `dataset_builder` builds: the method
    class's own and inherited options, the dataset's in the ``dataset`` section (open to any
    key for a builder that declares none)."""
    declared = getattr(dataset_builder, "options", None)
    key = (method_cls, dataset_builder is None, id(declared))
    if key not in _schemas or _schemas[key][0] is not declared:
        _schemas[key] = (declared, _run_schema(method_cls, dataset_builder))
    return _schemas[key][1]


def _run_schema(method_cls, dataset_builder) -> Section:
    schema = merged_options(reversed(type.mro(method_cls)))
    dataset = schema.options.get("dataset")
    if dataset_builder is None or not isinstance(dataset, Section):
        return schema
    declared = getattr(dataset_builder, "options", None)
    if declared is None:
        return schema.extend({"dataset": Section(dataset.options, dataset.help, dataset.checks, open=True)})
    return schema.extend({"dataset": declared})


# -- merging a layer ------------------------------------------------------------------------------
def _unknown_key(keys, schema: Section, where: str, method: str) -> UserError:
    dotted = ".".join(keys)
    parent = schema.entry(keys[:-1])
    siblings = [".".join(list(keys[:-1]) + [key]) for key in parent.options] if isinstance(parent, Section) else []
    listing = f"`ltbench list methods --options {method}`" if method else "`ltbench list methods --options NAME`"
    return UserError(f"unknown config key '{dotted}'{close_matches_hint(dotted, siblings)} ({where}); {listing} "
                     "lists the options, and a method declares its own in its class's `options`")


def _section_replaced(dotted: str, old, new, where: str):
    """A section cannot be replaced by a value, or by a mapping that leaves out some of its keys:
    everything after would miss them."""
    if not isinstance(new, dict):
        first = ", ".join(list(old)[:4]) if isinstance(old, dict) else ""
        raise UserError(f"{dotted}={shown(new)}: {dotted} is a section of settings ({first}, ...); "
                        f"set {dotted}.KEY=VALUE instead ({where})")
    left_out = [key for key in (old or {}) if key not in new]
    if left_out:
        example = next(iter(new), None)
        hint = f"set {dotted}.{example}={new[example]!r}" if example is not None else f"set {dotted}.KEY=VALUE"
        raise UserError(f"{dotted}={{...}} would replace the whole section {dotted}, leaving out "
                        f"{', '.join(left_out[:4])}{', ...' if len(left_out) > 4 else ''}; {hint} instead ({where})")


# An undeclared key of an open section, and everything below it: taken as it is.
_FREE = object()


def _entry(section, key: str):
    """The Option or Section `key` is declared as in `section`, _FREE where anything goes, or
    None for an unknown key."""
    if section is _FREE:
        return _FREE
    entry = section.entry((key,))
    return _FREE if entry is None and section.open else entry


class Merger:
    """Merges layers into one config, checking each key against the schema as it comes in."""

    def __init__(self, schema: Section, method: str = "", config: dict = None, origins: Origins = None):
        self.schema, self.method = schema, method
        self.config: dict = {} if config is None else config
        self.origins = Origins() if origins is None else origins

    def merge(self, layer: Layer):
        for key, value in layer.values.items():
            self._leaf(self.config, self.schema, (str(key),), value, layer, replace_section=False)

    def set(self, keys: Tuple[str, ...], value, layer: Layer, replace_section: bool = True):
        """Set the key path `keys` to `value`. A mapping for a section merges key by key; with
        `replace_section` (a dotted option) it must hold every key the section has."""
        node, section = self.config, self.schema
        for depth, key in enumerate(keys[:-1]):
            here = keys[:depth + 1]
            entry = _entry(section, key)
            if isinstance(entry, Option) and entry.is_spec:
                self._set_in_spec(node, here, keys[depth + 1:], value, layer)
                return
            current = node.get(key)
            if isinstance(entry, Option) or (current is not None and not isinstance(current, dict)):
                raise UserError(f"config key '{'.'.join(here)}' is not a mapping, cannot set "
                                f"'{'.'.join(keys)}' ({layer.where(keys)})")
            if entry is None:
                raise _unknown_key(here, self.schema, layer.where(keys), self.method)
            node = node.setdefault(key, {})
            section = entry if isinstance(entry, Section) else _FREE
        self._leaf(node, section, keys, value, layer, replace_section)

    def _leaf(self, node: dict, section, keys, value, layer: Layer, replace_section: bool):
        key, dotted = keys[-1], ".".join(keys)
        entry = _entry(section, key)
        if entry is None:
            raise _unknown_key(keys, self.schema, layer.where(keys), self.method)
        if isinstance(entry, Section):
            if replace_section or not isinstance(value, dict):
                _section_replaced(dotted, node.get(key), value, layer.where(keys))
            if not isinstance(node.get(key), dict):
                node[key] = {}
            for child, child_value in value.items():
                self._leaf(node[key], entry, keys + (str(child),), child_value, layer, replace_section=False)
            return
        if isinstance(entry, Option) and entry.is_spec and isinstance(value, dict) and "type" not in value \
                and node.get(key) is not None:
            for option, option_value in value.items():  # loss: {tau: 2} sets an option of the loss
                self._set_in_spec(node, keys, (str(option),), option_value, layer)
            return
        replaced_mapping = isinstance(node.get(key), dict)
        node[key] = copy.deepcopy(value)
        self.origins.set(dotted, layer.origin(keys), replaced_mapping)

    def _set_in_spec(self, node: dict, keys, inner: Tuple[str, ...], value, layer: Layer):
        """An option of a registered part (loss.tau=2), checked with the whole spec at the end."""
        current = node.get(keys[-1])
        if isinstance(current, str):
            node[keys[-1]] = {"type": current}
        elif not isinstance(current, dict):
            raise UserError(f"config key '{'.'.join(keys)}' names no {keys[-1]} to set options of; set "
                            f"{'.'.join(keys)}={{type: NAME, ...}} ({layer.where(keys)})")
        spec = node[keys[-1]]
        for key in inner[:-1]:
            spec = spec.setdefault(key, {})
        spec[inner[-1]] = copy.deepcopy(value)
        full = keys + inner
        self.origins.set(".".join(full), layer.origin(full))


def check_layer(layer: Layer, schema: Section, method: str = ""):
    """Every key of a layer that is not merged in this run (another dataset's per_dataset
    section) is declared, and every value its option can check alone is allowed."""
    def walk(values: dict, section, keys):
        for key, value in values.items():
            here = keys + (str(key),)
            entry = _entry(section, str(key))
            if entry is None:
                raise _unknown_key(here, schema, layer.where(here), method)
            if isinstance(entry, Section):
                if not isinstance(value, dict):
                    _section_replaced(".".join(here), {}, value, layer.where(here))
                walk(value, entry, here)
            elif isinstance(entry, Option) and not (entry.is_spec and isinstance(value, dict) and "type" not in value):
                try:
                    expected = entry.problem(value)
                except UserError as error:
                    raise UserError(f"{'.'.join(here)}: {error} ({layer.where(here)})") from None
                if expected is not None:
                    raise value_error(".".join(here), value, entry, expected, layer.where(here))

    walk(layer.values, schema, ())


# -- the final check --------------------------------------------------------------------------------
def check_config(config: dict, schema: Section, origins: Origins, method: str = "") -> dict:
    """Every declared option has a value its option takes, then every section's own checks run.
    A UserError names the key, the value, what is allowed and where the value was set."""
    for dotted, option in schema.walk():
        value = get_dotted(config, dotted, MISSING)
        if value is MISSING:
            whose = f"method {method}" if method else "this config"
            raise UserError(f"{dotted} has no value: the options of {whose} declare it without a default; "
                            f"set it in the method's YAML or with --cfg-options {dotted}=VALUE")
        origin = origins.of(dotted)
        where = origin.where if origin else "set by the declared default"
        try:
            expected = option.problem(value)
        except UserError as error:
            raise UserError(f"{dotted}: {error} ({where})") from None
        if expected is not None:
            raise value_error(dotted, value, option, expected, where)
    for path, section in schema.sections():
        values = get_dotted(config, path) if path else config
        for check in section.checks:
            check(values, path)
    return config


def in_declared_order(values, section: Section):
    """A config's keys in the order their options are declared (common ones first, then the
    method's), as records and tables show it; undeclared keys of open sections after them."""
    if not isinstance(values, dict) or not isinstance(section, Section):
        return values
    ordered = {key: in_declared_order(values[key], entry) for key, entry in section.options.items() if key in values}
    ordered.update({key: value for key, value in values.items() if key not in ordered})
    return ordered


# -- one run's config ---------------------------------------------------------------------------------
def _pending(dotted: str, current, later: Iterable[Tuple[str, object]]):
    """The value `dotted` will hold once the (dotted key, value) pairs `later` are set."""
    value = current
    for key, new in later:
        if new is None:
            continue
        if key == dotted:
            value = new
        elif dotted.startswith(key + ".") and isinstance(new, dict):
            value = get_dotted(new, dotted[len(key) + 1:], value)
    return value


# (id(schema), id(doc)) -> (schema, doc) of the method files already checked against a schema:
# a file is checked once while it and the options are the same (the references keep both alive,
# so their ids are not reused).
_checked_files = {}


def _check_file(doc, schema: Section, method: str):
    """Every key and value of one of the method's YAML files, whichever dataset and backbone this
    run has and whatever a later layer sets: a typo in another dataset's section fails too."""
    check_layer(yaml_layer(doc, {k: v for k, v in doc.data.items() if k not in METHOD_FILE_DIRECTIVES}), schema,
                method)
    for kind in (PER_DATASET, PER_BACKBONE):
        for _, inside, section in MethodFiles([doc]).sections(kind):
            if section is None:
                continue
            if not isinstance(section, dict):
                raise UserError(f"{doc.where(inside)}: {'.'.join(inside)} must be a section of settings")
            check_layer(yaml_layer(doc, {k: v for k, v in section.items() if k != PER_BACKBONE}, inside), schema,
                        method)
            for name, nested in (section.get(PER_BACKBONE) or {}).items():
                check_layer(yaml_layer(doc, nested or {}, inside + (PER_BACKBONE, str(name))), schema, method)


def _check_files(files: MethodFiles, schema: Section, method: str):
    for doc in files.docs:
        key = (id(schema), id(doc))
        if key not in _checked_files:
            _check_file(doc, schema, method)
            _checked_files[key] = (schema, doc)


# Keys the resolver sets from the request's names: no flag or option changes them.
NAMED_BY_REQUEST = ("method", "dataset.name")


def _request_pairs(request: RunRequest):
    """(the flags' (dotted key, value) pairs that are given, the options' pairs)."""
    overrides = [("backbone.clip", request.backbone), ("seed", request.seed), *request.overrides.items()]
    overrides = [(key, value) for key, value in overrides if value is not None]
    for dotted, _ in request.options:
        if dotted in NAMED_BY_REQUEST:
            flag = "--method" if dotted == "method" else "--dataset"
            raise UserError(f"{dotted} is the name the run was asked for; set it with {flag}, not "
                            f"{request.options_origin}")
    return overrides, list(request.options)


def declared_defaults(schema: Section) -> Layer:
    """The options' own defaults, the first layer, each with its declared source."""
    options = dict(schema.walk())
    return Layer(schema.defaults(), lambda keys: Origin("the declared default", options[".".join(keys)].source)
                 if ".".join(keys) in options else Origin("the declared default"), "the declared defaults")


def resolve_run(request: RunRequest) -> Resolved:
    """The fully resolved and checked config of one run, with where each value was set."""
    method_cls = registry.get(registry.METHODS, request.method)
    builder = registry.get(registry.DATASETS, request.dataset)
    schema = run_schema(method_cls, builder)
    files = method_files(request.method)
    merger = Merger(schema, request.method)
    _check_files(files, schema, request.method)
    for layer in (declared_defaults(schema), *base_layers(), *dataset_layers(request.dataset), *files.top_layers(),
                  *files.section_layers(PER_DATASET, request.dataset)):
        merger.merge(layer)
    fixed = fixed_layer({"method": request.method, "dataset": {"name": request.dataset}}, "set by --method / --dataset")
    merger.merge(fixed)

    # The backbone picks the per_backbone section; the CLI may change it, so it is looked up in
    # what the flags and options will set before they are merged. A method whose recipe depends
    # on another model names the key that picks its sections (TACKLE: backbone.vision).
    overrides, options = _request_pairs(request)
    picked_by = files.directive(PER_BACKBONE_FROM) or DEFAULT_BACKBONE_KEY
    backbone = _pending(picked_by, get_dotted(merger.config, picked_by), [*overrides, *options])
    if backbone is not None:
        key = backbone_key(backbone)
        for layer in (*files.section_layers(PER_BACKBONE, key),
                      *files.section_layers(PER_DATASET, request.dataset, PER_BACKBONE, key)):
            if get_dotted(layer.values, picked_by) is not None:
                raise UserError(f"{layer.where(tuple(picked_by.split('.')))}: a per_backbone section cannot set "
                                f"{picked_by}, the key that picks it")
            merger.merge(layer)

    for dotted, value in overrides:
        flag = FLAG_OF_KEY.get(dotted, "the run's settings")
        keys = tuple(dotted.split("."))
        merger.set(keys, value, fixed_layer({}, f"set by {flag}"), replace_section=False)
    for dotted, value in options:
        keys = tuple(dotted.split("."))
        merger.set(keys, value, fixed_layer({}, f"set by {request.options_origin}"))
    check_config(merger.config, schema, merger.origins, request.method)
    return Resolved(in_declared_order(merger.config, schema), merger.origins, schema)


def resolve(request: RunRequest) -> dict:
    """The fully resolved config of one run: the method and dataset must be registered."""
    return resolve_run(request).config


def resolve_dataset_config(dataset_name: str, common, overrides=None, options=()) -> dict:
    """defaults.yaml <- datasets/<D>.yaml <- CLI, checked: what a dataset tool (data check) needs.
    common: a method class whose options are the common ones (``Method``)."""
    schema = run_schema(common, registry.get(registry.DATASETS, dataset_name))
    merger = Merger(schema)
    for layer in (declared_defaults(schema), *base_layers(), *dataset_layers(dataset_name)):
        merger.merge(layer)
    merger.merge(fixed_layer({"dataset": {"name": dataset_name}}, "set by the dataset's name"))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            merger.set(tuple(dotted.split(".")), value, fixed_layer({}, f"set by {FLAG_OF_KEY.get(dotted, dotted)}"),
                       replace_section=False)
    for dotted, value in options or ():
        merger.set(tuple(dotted.split(".")), value, fixed_layer({}, "set by --cfg-options"))
    check_config(merger.config, schema.without("method"), merger.origins)
    return in_declared_order(merger.config, schema)


def related_method_config(method_name: str, cfg: dict, cfg_options=()) -> dict:
    """The config ``method_name`` resolves to for this run's dataset (with its options), backbone,
    seed and runtime: for a method one run builds on (an ensemble member, a pseudo-label teacher),
    configured exactly as its own run would be, so that stage checkpoints shared by hash (BALLAD's
    phase A) are found again. cfg_options: 'KEY=VALUE' strings for that method's config."""
    return resolve(RunRequest(
        method=method_name, dataset=cfg["dataset"]["name"], backbone=cfg["backbone"]["clip"], seed=cfg["seed"],
        overrides={"dataset": copy.deepcopy(cfg["dataset"]), "runtime": copy.deepcopy(cfg["runtime"])},
        options=parse_cfg_options(cfg_options),
        options_origin=f"the {method_name} options of this {cfg.get('method', 'run')} run"))


def option_values(config: dict, schema: Section, kind) -> List[Tuple[str, object]]:
    """(dotted key, value) of every option of a resolved config whose type is `kind` (a Spec's
    `what`, such as 'loss' or 'sampler'): how a method reads another's config by meaning, not by
    its key names."""
    found = []
    for dotted, option in schema.walk():
        if option.is_spec and option.type.what == kind:
            found.append((dotted, get_dotted(config, dotted)))
    return found


__all__ = ["RunRequest", "Resolved", "resolve", "resolve_run", "resolve_dataset_config", "related_method_config",
           "runtime_overrides", "run_schema", "check_config", "check_layer", "option_values", "Merger"]
