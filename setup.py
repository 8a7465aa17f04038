"""Packages of the one import name `ltbench`, computed so that no new module is ever left out.

The repository keeps the design's top-level folders (ltbench/, methods/, benchmarks/); the wheel
installs them as ltbench, ltbench.methods (the method plug-ins) and ltbench.benchmarks (the
YAML configs, as package data). Everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

PACKAGE_DIRS = {"ltbench": "ltbench", "ltbench.methods": "methods", "ltbench.benchmarks": "benchmarks"}


def packages_under(name: str, folder: str):
    return [name] + [f"{name}.{sub}" for sub in find_packages(folder)]


packages = [package for name, folder in PACKAGE_DIRS.items() for package in packages_under(name, folder)]
setup(packages=packages, package_dir=PACKAGE_DIRS)
