"""The built-in method plug-ins, installed as ``ltbench.methods``.

Importing this package imports every module and package in it, which runs their
``@METHODS.register_module`` decorators; ``ltbench.core.registry.METHODS`` does so on its first
lookup. A new method is a new module (or package) here: nothing else lists it.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
    importlib.import_module(_module.name)
