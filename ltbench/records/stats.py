"""Statistics for comparing runs from their per-sample predictions (``ltbench compare``).

Everything here is plain numpy / scipy on arrays; loading records and rendering live in
ltbench.records.compare. Accuracies and differences are in percent.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats as scipy_stats

from ltbench.metrics import GROUPS

STATISTICS = ("overall", *GROUPS, "mean_per_class")


def class_statistics(class_means: np.ndarray, class_sizes: np.ndarray, class_groups: np.ndarray) -> Dict[str, np.ndarray]:
    """overall / many / medium / few / mean_per_class (percent) from per-class mean scores.

    class_means [..., C] (the last axis: the classes with evaluation images), class_sizes [C] images
    per class, class_groups [C] 'many' / 'medium' / 'few'. overall: image-weighted mean; the others:
    unweighted means over (the group's) classes; a group without classes: None.
    """
    result = {"overall": 100.0 * (class_means * class_sizes).sum(axis=-1) / class_sizes.sum()}
    for name in GROUPS:
        mask = class_groups == name
        result[name] = 100.0 * class_means[..., mask].mean(axis=-1) if mask.any() else None
    result["mean_per_class"] = 100.0 * class_means.mean(axis=-1)
    return result


def _classes(labels: np.ndarray, num_classes: int):
    present = np.flatnonzero(np.bincount(labels, minlength=num_classes))
    return present, np.bincount(labels, minlength=num_classes)[present]


def point_statistics(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> Dict[str, Optional[float]]:
    """class_statistics of per-image scores (1 / 0 correctness, or paired differences)."""
    present, sizes = _classes(labels, len(groups))
    sums = np.bincount(labels, weights=scores, minlength=len(groups))[present]
    values = class_statistics(sums / sizes, sizes, groups[present])
    return {name: None if value is None else float(value) for name, value in values.items()}


BLOCK = 250  # replicates per random stream


def statistic_weights(sizes: np.ndarray, class_groups: np.ndarray) -> np.ndarray:
    """[C, 5]: class sums @ weights = overall / many / medium / few / mean_per_class (fractions;
    a group without classes: a NaN column)."""
    weights = np.zeros((len(sizes), len(STATISTICS)))
    weights[:, 0] = 1.0 / sizes.sum()
    for column, name in enumerate(GROUPS, start=1):
        mask = class_groups == name
        weights[:, column] = np.where(mask, 1.0 / (sizes * max(1, mask.sum())), 0.0) if mask.any() else np.nan
    weights[:, -1] = 1.0 / (sizes * len(sizes))
    return weights


def within_class_bootstrap(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, resamples: int,
                           seed: int, threads: int = 1) -> Dict[str, Optional[np.ndarray]]:
    """``resamples`` bootstrap replicates of point_statistics, resampling images with replacement
    within each class (every replicate keeps each class's image count, as a balanced test set does).

    Paired: scores are per-image differences of two runs (or their mean over seeds), so one
    replicate resamples the same images for both. Drawing n_c images with replacement from a class
    whose scores take the values v_1..v_K with frequencies f_1..f_K is the same as drawing the
    value counts from Multinomial(n_c, f / n_c); that is what is drawn (numpy's
    Generator.multinomial), vectorised over classes and replicates, instead of n_c indices per class
    and replicate. A class whose scores are all equal contributes its constant. Replicates come in
    blocks of BLOCK, block i drawn from default_rng(SeedSequence(seed).spawn(...)[i]): the numbers
    depend on seed and resamples only, not on ``threads`` (blocks run in that many threads).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    present, sizes = _classes(labels, len(groups))
    pairs, frequencies = np.unique(np.stack([labels, scores], axis=1), axis=0, return_counts=True)
    position = np.searchsorted(present, pairs[:, 0].astype(np.int64))
    categories = np.bincount(position, minlength=len(present))
    width = int(categories.max())
    # Right-aligned: padding (probability 0) comes first, so numpy's multinomial, which gives the
    # last category whatever the others left, never puts rounding remainders on padding.
    slot = (np.arange(len(pairs)) - np.repeat(np.cumsum(categories) - categories, categories)
            + (width - categories[position]))
    values = np.zeros((len(present), width))
    counts = np.zeros((len(present), width))
    values[position, slot] = pairs[:, 1]
    counts[position, slot] = frequencies
    varying = categories > 1
    weights = statistic_weights(sizes, groups[present])
    constant = (values[~varying] * counts[~varying]).sum(axis=1) @ weights[~varying]
    n, pvals, vals = sizes[varying], counts[varying] / sizes[varying, None], values[varying]
    varying_weights = weights[varying]
    blocks = [(start, min(resamples, start + BLOCK)) for start in range(0, resamples, BLOCK)]
    streams = np.random.SeedSequence(seed).spawn(len(blocks))
    result = np.empty((resamples, len(STATISTICS)))

    def draw(block):
        (start, stop), stream = blocks[block], streams[block]
        result[start:stop] = constant
        if len(n):
            drawn = np.random.default_rng(stream).multinomial(n, pvals, size=(stop - start, len(n)))
            result[start:stop] += np.einsum("bck,ck->bc", drawn, vals) @ varying_weights

    if threads > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(draw, range(len(blocks))))
    else:
        for block in range(len(blocks)):
            draw(block)
    return {name: None if np.isnan(result[0, column]) else 100.0 * result[:, column]
            for column, name in enumerate(STATISTICS)}


def percentile_interval(replicates: Optional[np.ndarray], level: float = 0.95, estimate: Optional[float] = None):
    """[low, high]: the (1 - level) / 2 and (1 + level) / 2 quantiles (numpy's linear interpolation),
    widened where needed to contain ``estimate`` (when given).

    The replicates and the estimate are sums in different orders (a matrix product against
    bincounts), so where every replicate is the same (no class's results vary under within-class
    resampling: iNaturalist's 3 test images a class, each class all right or all wrong) the
    interval can sit one rounding step beside its own estimate, and an error bar drawn from it
    is negative. An interval that does not contain its estimate is never reported: the
    bound on the wrong side moves to the estimate (which also covers a strongly skewed bootstrap
    distribution, whose percentile interval can miss the estimate by more than rounding).
    """
    if replicates is None:
        return None
    tail = 100.0 * (1 - level) / 2
    low, high = (float(value) for value in np.percentile(replicates, [tail, 100.0 - tail]))
    if estimate is not None:
        low, high = min(low, float(estimate)), max(high, float(estimate))
    return [low, high]


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test on paired top-1 outcomes: of the n discordant images, b where only A is
    right and c where only B is, the two-sided binomial p-value of c under Binomial(n, 1/2)
    (scipy.stats.binomtest); 1.0 when no image is discordant."""
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    p = float(scipy_stats.binomtest(only_b, discordant, 0.5).pvalue) if discordant else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": p}


SEED_TESTS = ("t", "wilcoxon")


def seed_test(differences: Sequence[float], test: str = "t") -> Optional[float]:
    """Two-sided p-value that the mean (t: scipy.stats.ttest_1samp, the paired t-test) or the median
    (wilcoxon: scipy.stats.wilcoxon, signed ranks) per-seed difference is 0; None when it is not
    defined (fewer than 2 seeds, or every difference equal)."""
    differences = np.asarray([d for d in differences if d is not None], dtype=np.float64)
    if len(differences) < 2:
        return None
    if test == "t":
        if np.all(differences == differences[0]):
            return None  # zero spread: t is undefined
        return float(scipy_stats.ttest_1samp(differences, 0.0).pvalue)
    if np.all(differences == 0):
        return None
    return float(scipy_stats.wilcoxon(differences).pvalue)


CORRECTIONS = ("holm", "bonferroni", "none")


def adjust_p_values(p_values: List[Optional[float]], method: str = "holm") -> List[Optional[float]]:
    """Family-wise adjusted p-values (None stays None and does not count towards m).

    holm: sort ascending; the i-th smallest (i from 0) becomes max over j <= i of
    min(1, (m - j) * p_(j)). bonferroni: min(1, m * p)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: List[Optional[float]] = [None] * len(p_values)
    m = len(indexed)
    if method == "none":
        return list(p_values)
    if method == "bonferroni":
        for p, i in indexed:
            adjusted[i] = min(1.0, m * p)
        return adjusted
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
