"""digits_lt: an offline long-tailed dataset made from scikit-learn's bundled handwritten digits."""
import numpy as np

from ltbench.config.options import Option, declare_options
from ltbench.core.errors import UserError
from ltbench.core.registry import DATASETS
from ltbench.data.base import ArraySplit, LTDataset, required_options
from ltbench.data.profiles import exponential_profile

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# The options this builder reads; their values live in benchmarks/datasets/digits_lt.yaml.
DIGITS_OPTIONS = {
    "imbalance_ratio": Option(float, ge=1, help="n_max / n_min of the train split (exponential profile)"),
    "max_per_class": Option(int, ge=1, help="train images of the largest class"),
    "test_per_class": Option(int, ge=1, help="images per class of the balanced test split"),
    "val_per_class": Option(int, ge=1, help="images per class of the balanced val split"),
    "seed": Option(int, ge=0, help="which images go where"),
}
OPTIONS = tuple(DIGITS_OPTIONS)


def _digit_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 0..16 ink density -> uint8 grey, dark ink on a white page (how a photographed digit looks).
    images = (255 - np.rint(digits.images * (255.0 / 16.0))).astype(np.uint8)
    return images, digits.target.astype(np.int64)


@DATASETS.register_module(name="digits_lt")
@declare_options(DIGITS_OPTIONS)
def build_digits_lt(options: dict, require_all_splits: bool = True) -> LTDataset:
    """Offline: scikit-learn's 8x8 digits, exponential long-tailed train split, balanced val/test, rest as pool."""
    opts = required_options(options, OPTIONS, "digits_lt")
    images, labels = _digit_images()
    num_classes = len(CLASS_NAMES)
    profile = exponential_profile(int(opts["max_per_class"]), num_classes, float(opts["imbalance_ratio"]))
    held_out = int(opts["test_per_class"]) + int(opts["val_per_class"])
    smallest = int(np.bincount(labels).min())
    if profile[0] + held_out > smallest:
        raise UserError(
            f"digits_lt: max_per_class + test_per_class + val_per_class = {profile[0] + held_out} "
            f"exceeds the {smallest} images of the smallest digit class; lower one of them"
        )
    rng = np.random.RandomState(int(opts["seed"]))
    parts = {"train": [], "val": [], "test": [], "pool": []}
    for class_index in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == class_index))
        test_end = int(opts["test_per_class"])
        val_end = test_end + int(opts["val_per_class"])
        parts["test"].append(members[:test_end])
        parts["val"].append(members[test_end:val_end])
        parts["train"].append(members[val_end: val_end + profile[class_index]])
        parts["pool"].append(members[val_end + profile[class_index]:])
    splits = {}
    for name, chunks in parts.items():
        index = np.sort(np.concatenate(chunks))
        splits[name] = ArraySplit(name=name, images=images[index], labels=labels[index], indices=index)
    return LTDataset(
        name="digits_lt", class_names=list(CLASS_NAMES), splits=splits,
        notes={"pool": "digits left out of the long-tailed train split; labels are hidden ground truth",
               "profile": f"exponential, n_max={profile[0]}, imbalance ratio {opts['imbalance_ratio']}"},
    )
