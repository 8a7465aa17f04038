"""Long-tailed datasets, split files, transforms, samplers and loaders."""
from ltbench.config import dataset_defaults
from ltbench.data.base import ArraySplit, FileSplit, LTDataset, Split
from ltbench.data.transforms import TransformSpec

__all__ = ["ArraySplit", "FileSplit", "LTDataset", "Split", "TransformSpec", "build_dataset"]


def build_dataset(options: dict, require_all_splits: bool = True) -> LTDataset:
    """DATASETS[options['name']](options): the single door to every dataset."""
    from ltbench.core import registry

    builder = registry.get(registry.DATASETS, options["name"])
    return builder(with_dataset_defaults(options), require_all_splits=require_all_splits)


def with_dataset_defaults(options: dict) -> dict:
    """`options` over the `dataset` section of benchmarks/datasets/<name>.yaml, the one place a
    dataset's defaults live (a resolved run config already holds them; a tool or test may give
    only what it changes)."""
    return {**dataset_defaults(options["name"]), **options}
