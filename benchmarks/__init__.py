"""ltbench's shipped configs (installed as the package ``ltbench.benchmarks``): defaults.yaml,
datasets/, methods/, suites/ and reported.yaml. Data only: ltbench reads these files through
``importlib.resources`` (see ltbench/config/search.py)."""
