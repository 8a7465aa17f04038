"""Built-in datasets. Importing this package registers them in DATASETS."""
from ltbench.data.datasets import digits  # noqa: F401
