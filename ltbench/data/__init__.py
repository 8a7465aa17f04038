"""Long-tailed datasets, split files, transforms, samplers and loaders."""
from ltbench.data.base import ArraySplit, FileSplit, LTDataset, Split
from ltbench.data.transforms import TransformSpec

__all__ = ["ArraySplit", "FileSplit", "LTDataset", "Split", "TransformSpec", "build_dataset"]


def build_dataset(options: dict, require_all_splits: bool = True) -> LTDataset:
    """DATASETS[options['name']](options): the single door to every dataset."""
    from ltbench.core import registry

    builder = registry.get(registry.DATASETS, options["name"])
    return builder(options, require_all_splits=require_all_splits)
