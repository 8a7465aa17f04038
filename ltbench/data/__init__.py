"""Long-tailed datasets, split files, transforms, samplers and loaders."""
from ltbench.config import dataset_defaults
from ltbench.config.options import as_section, value_error
from ltbench.data.base import ArraySplit, FileSplit, LTDataset, Split
from ltbench.data.transforms import TransformSpec

__all__ = ["ArraySplit", "FileSplit", "LTDataset", "Split", "TransformSpec", "build_dataset"]


def build_dataset(options: dict, require_all_splits: bool = True, complete: bool = False) -> LTDataset:
    """DATASETS[options['name']](options): the single door to every dataset.

    complete: `options` is a resolved config's `dataset` section (ltbench.config.resolution), whole
    and checked, used as it is. Otherwise (a tool, a test) it holds only what it changes: the rest
    comes from the dataset's YAML, and the options its builder declares are checked here."""
    from ltbench.core import registry

    builder = registry.get(registry.DATASETS, options["name"])
    if not complete:
        options = with_dataset_defaults(options)
        _check_declared(builder, options)
    return builder(options, require_all_splits=require_all_splits)


def with_dataset_defaults(options: dict) -> dict:
    """`options` over the `dataset` section of benchmarks/datasets/<name>.yaml, the one place a
    dataset's values live."""
    return {**dataset_defaults(options["name"]), **options}


def _check_declared(builder, options: dict):
    declared = getattr(builder, "options", None)
    if declared is None:
        return
    for key, option in as_section(declared).walk():
        if key in options:
            expected = option.problem(options[key])
            if expected is not None:
                raise value_error(f"dataset.{key}", options[key], option, expected, "given to build_dataset")
