"""ltbench.methods and ltbench.benchmarks in a source checkout that is not installed.

methods/ (the plug-ins) and benchmarks/ (the configs) sit beside ltbench/, not in it: only the
packaging maps them to ltbench.methods and ltbench.benchmarks (pyproject.toml's package-dir).
The wheel holds them under ltbench/, and setuptools' editable finder follows the map, but a
checkout put on the path as it is (PYTHONPATH=the checkout, or `python -m ltbench` from its
root, as the tests and the CI do) has neither. This finder applies the same map there, to these
two names only (their modules then come from their own folders as usual).

It is installed when this ltbench is such a checkout, also under an editable install, and ahead
of every other finder: an editable install's finder resolves the names to the checkout *it*
was installed from, which need not be the one imported (a second checkout on PYTHONPATH while
the first is installed editable), so the plug-ins must come from beside this very ltbench/.
"""
import importlib.abc
import importlib.util
import sys
from pathlib import Path

# pyproject.toml's [tool.setuptools.package-dir], less ltbench itself
# (tests/app/test_packaging.py keeps the two the same).
PACKAGE_DIRS = {"ltbench.methods": "methods", "ltbench.benchmarks": "benchmarks"}


class CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds the packages of PACKAGE_DIRS in the folders of one checkout."""

    def __init__(self, root: Path):
        self.folders = {name: root / folder for name, folder in PACKAGE_DIRS.items()}

    def find_spec(self, fullname, path=None, target=None):
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def checkout_root():
    """The checkout that holds this ltbench/, or None when ltbench is installed from a wheel
    (its ltbench/methods is a real folder) or the folder above is no ltbench checkout."""
    package = Path(__file__).resolve().parent
    root = package.parent
    if (package / "methods").exists() or not (root / "pyproject.toml").is_file():
        return None
    if not all((root / folder / "__init__.py").is_file() for folder in PACKAGE_DIRS.values()):
        return None
    return root


def install():
    root = checkout_root()
    if root is not None and not any(isinstance(finder, CheckoutFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, CheckoutFinder(root))
