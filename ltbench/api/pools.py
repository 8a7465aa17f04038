"""Unlabeled image pools joined to the train set, and the shot groups (many / medium / few) that
decide which classes receive pool images. Used by TACKLE's pseudo-labelling."""
from ltbench.data.pool import unlabeled_pool, with_pool_images
from ltbench.metrics import GROUPS, SHOT_RULES, shot_groups

__all__ = ["unlabeled_pool", "with_pool_images", "GROUPS", "SHOT_RULES", "shot_groups"]
