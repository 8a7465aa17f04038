"""Registries for the plug-in parts of ltbench, and the one builder of ``name | {type: name, ...}``.

Each registry names the modules that fill it (mmengine's ``locations``): they are imported on
the first lookup, so nothing here imports the parts it lists and no import circle can form.
Method plug-ins register with ``@METHODS.register_module(name=...)`` in ``ltbench.methods`` (the
repository's ``methods/`` folder) or in any installed distribution that declares the
``ltbench.methods`` entry-point group; dataset plug-ins likewise with ``DATASETS`` and the
``ltbench.datasets`` group. A registry may also be filled on each lookup by a function its
modules add with ``fill_on_lookup`` (the datasets defined by YAML files, which come and go with
the config search path).
"""
import inspect
import sys
import warnings
from importlib import metadata
from typing import Callable, Dict, Iterable, List, Mapping

from mmengine.registry import Registry

from ltbench.core.errors import UserError, close_matches_hint, unknown_name

METHODS = Registry("method", scope="ltbench", locations=["ltbench.methods"])
DATASETS = Registry("dataset", scope="ltbench", locations=["ltbench.data.datasets"])
LOSSES = Registry("loss", scope="ltbench", locations=["ltbench.losses"])
SAMPLERS = Registry("sampler", scope="ltbench", locations=["ltbench.data.samplers"])
# Trainable second-stage heads on a frozen first-stage head (decoupled training: cRT, LWS, ...).
SECOND_STAGES = Registry("second stage", scope="ltbench", locations=["ltbench.models.calibration"])

# `ltbench list WHAT` for each registry, named in "unknown ..." errors.
LISTINGS = {"method": "methods", "dataset": "datasets", "loss": "losses", "sampler": "samplers"}

# The entry-point group of each registry that third-party packages may fill, by registry name.
ENTRY_POINT_GROUPS = {"method": "ltbench.methods", "dataset": "ltbench.datasets"}
ENTRY_POINT_GROUP = ENTRY_POINT_GROUPS["method"]
_loaded_groups = set()
# Registry name -> functions run before each of its lookups (after its modules and plug-ins).
_fillers: Dict[str, List[Callable[[Registry], None]]] = {}


def _entry_points(group):
    if sys.version_info >= (3, 10):
        return metadata.entry_points(group=group)
    return metadata.entry_points().get(group, [])


def load_plugins(*groups: str):
    """Import every entry point of `groups` (default: all of ENTRY_POINT_GROUPS) once: the
    third-party method and dataset packages."""
    for group in groups or tuple(ENTRY_POINT_GROUPS.values()):
        if group in _loaded_groups:
            continue
        _loaded_groups.add(group)
        kind = next((name for name, known in ENTRY_POINT_GROUPS.items() if known == group), group)
        for entry_point in _entry_points(group):
            try:
                entry_point.load()
            except Exception as error:  # a broken third-party plug-in must not break ltbench
                warnings.warn(f"ltbench: could not load {kind} plug-in '{entry_point.name}': {error}", stacklevel=2)


def fill_on_lookup(registry: Registry, fill: Callable[[Registry], None]):
    """Run ``fill(registry)`` before every lookup of `registry`, once its modules and plug-ins are
    imported: for entries that files define (a YAML dataset), which may change between lookups."""
    fills = _fillers.setdefault(registry.name, [])
    if fill not in fills:
        fills.append(fill)


def _filled(registry: Registry) -> Registry:
    registry.import_from_location()
    group = ENTRY_POINT_GROUPS.get(registry.name)
    if group is not None:
        load_plugins(group)
    for fill in _fillers.get(registry.name, ()):
        fill(registry)
    return registry


def register_variant(base: type, name: str, doc: str, registry: Registry = METHODS) -> type:
    """Register `name` as a variant of the family `base`: a subclass that only names one setting
    (its YAML, ``benchmarks/methods/<name>.yaml``, holds the setting) with a one-line `doc` that
    ``ltbench list`` shows."""
    variant = type(f"{base.__name__}_{name}", (base,), {"__doc__": doc, "__module__": base.__module__})
    registry.register_module(name=name, module=variant)
    return variant


def names(registry: Registry) -> list:
    return sorted(_filled(registry).module_dict)


def get(registry: Registry, name: str):
    """The object registered as ``name``, or a UserError listing the close matches."""
    entries = _filled(registry).module_dict
    if name not in entries:
        raise unknown_name(registry.name, name, entries.keys(), LISTINGS.get(registry.name, ""))
    return entries[name]


def describe(registry: Registry):
    """(name, one-line description) for every registered entry, sorted by name."""
    rows = []
    for name, obj in sorted(_filled(registry).module_dict.items()):
        doc = (getattr(obj, "__doc__", None) or "").strip()
        rows.append((name, doc.splitlines()[0] if doc else ""))
    return rows


def split_spec(spec, what: str):
    """(name, options) of a config value naming a registered part: ``name`` or
    ``{type: name, **options}``; anything else is a one-line error."""
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        listing = LISTINGS.get(what)
        tail = f"; see `ltbench list {listing}`" if listing else ""
        raise UserError(f"a {what} is a name or a mapping with a 'type' name and options, got {spec!r}{tail}")
    options = dict(spec)
    return options.pop("type"), options


def check_options(what: str, name: str, target, options: Mapping, call_arguments: Iterable[str] = (),
                  reserved: Iterable[str] = ()):
    """A one-line error for an option that ``target``'s signature does not take (strict: typos
    never pass silently). ``call_arguments`` are given at each call, and an option of that name is
    called so; ``reserved`` ones are filled by the builder and are no option either."""
    call_arguments, reserved = tuple(call_arguments), tuple(reserved)
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    allowed = [key for key, p in parameters.items() if key not in call_arguments + reserved
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for key in options:
        if key in call_arguments:
            raise UserError(f"{what} '{name}': '{key}' is an argument of each call, not an option")
        if key not in allowed and (not takes_any or key in reserved):
            hint = close_matches_hint(key, allowed) if allowed else " (it takes no options)"
            raise UserError(f"{what} '{name}' has no option '{key}'{hint}")


def resolve_spec(registry: Registry, spec, call_arguments: Iterable[str] = (), reserved: Iterable[str] = ()):
    """(name, registered object, options) of a spec, its options checked against the object's
    signature: the one builder step shared by losses, samplers and second stages."""
    name, options = split_spec(spec, registry.name)
    target = get(registry, name)
    check_options(registry.name, name, target, options, call_arguments, reserved)
    return name, target, options
