"""The package list, the one part of the packaging that pyproject.toml cannot state: methods/ and
benchmarks/ install as ltbench.methods and ltbench.benchmarks (pyproject.toml's package-dir), so
their packages are named from that place (ltbench.methods.ballad), which a `find` in
pyproject.toml, naming packages by their folder (methods.ballad), does not do. A new method
package is found here without being listed."""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["ltbench", "ltbench.*"]),
                *(f"ltbench.{name}" for name in find_packages(include=["methods", "methods.*", "benchmarks"]))])
