"""Registries for the plug-in parts of ltbench, and discovery of method plug-ins.

Methods register with ``@METHODS.register_module(name=...)`` in the top-level ``methods``
package or in any installed distribution that declares the ``ltbench.methods`` entry-point group.
"""
import importlib
import pkgutil
import sys
import warnings
from importlib import metadata

from mmengine.registry import Registry

from ltbench.errors import unknown_name

METHODS = Registry("method", scope="ltbench")
DATASETS = Registry("dataset", scope="ltbench")
LOSSES = Registry("loss", scope="ltbench")
SAMPLERS = Registry("sampler", scope="ltbench")

ENTRY_POINT_GROUP = "ltbench.methods"
_discovered = False


def _import_builtin_parts():
    # Importing these modules runs their register_module decorators.
    importlib.import_module("ltbench.data.datasets")
    importlib.import_module("ltbench.data.samplers")
    importlib.import_module("ltbench.losses")


def discover_methods():
    """Import every module of the ``methods`` package and every ``ltbench.methods`` entry point."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    _import_builtin_parts()
    try:
        package = importlib.import_module("methods")
    except ModuleNotFoundError:
        package = None
    if package is not None:
        for module in pkgutil.iter_modules(package.__path__, prefix="methods."):
            importlib.import_module(module.name)
    for entry_point in _entry_points(ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as error:  # a broken third-party plug-in must not break ltbench
            warnings.warn(f"ltbench: could not load method plug-in '{entry_point.name}': {error}")


def _entry_points(group):
    if sys.version_info >= (3, 10):
        return metadata.entry_points(group=group)
    return metadata.entry_points().get(group, [])


def get(registry: Registry, name: str, listing: str = ""):
    """The class registered as ``name``, or a UserError listing the close matches."""
    discover_methods()
    obj = registry.get(name) if name in registry.module_dict else None
    if obj is None:
        raise unknown_name(registry.name, name, registry.module_dict.keys(), listing)
    return obj


def describe(registry: Registry):
    """(name, one-line description) for every registered entry, sorted by name."""
    discover_methods()
    rows = []
    for name, obj in sorted(registry.module_dict.items()):
        doc = (getattr(obj, "__doc__", None) or "").strip()
        rows.append((name, doc.splitlines()[0] if doc else ""))
    return rows
