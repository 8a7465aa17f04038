"""Built-in datasets. Importing this package registers them in DATASETS: the Python builders
(CIFAR-LT, digits_lt, folder_lt) and, before each lookup, the datasets YAML files define
(definitions.py: ImageNet-LT, Places-LT, iNaturalist 2018, and any on the config search path)."""
from ltbench.data.datasets import cifar, definitions, digits, files  # noqa: F401
