"""Built-in datasets. Importing this package registers them in DATASETS."""
from ltbench.data.datasets import cifar, digits, files  # noqa: F401
