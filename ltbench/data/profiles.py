"""Long-tailed class-size profiles."""
from typing import List


def exponential_profile(max_per_class: int, num_classes: int, imbalance_ratio: float) -> List[int]:
    """n_i = int(n_max * (1 / IR) ** (i / (C - 1))): the LDAM-DRW / CIFAR-LT convention."""
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance ratio must be >= 1, got {imbalance_ratio}")
    if num_classes == 1:
        return [int(max_per_class)]
    factor = 1.0 / imbalance_ratio
    return [int(max_per_class * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]
