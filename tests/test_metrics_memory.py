"""Memory of the passes over [N, C] logits (issue 23: 4.0-4.5 GB at iNaturalist's 24,426 x 8142):
metrics, the per-sample summary and the post-hoc adjustments hold a chunk of rows at a time, so
beyond their input and output they allocate a small fraction of the logits, and give the numbers
the whole-array computation gives."""
import tracemalloc

import numpy as np
import pytest

from ltbench.core import chunks
from ltbench.methods.posthoc.adjust import log_prior, logit_adjusted, prior_corrected, target_log_prior
from ltbench.metrics import evaluate, per_sample_summary
from ltbench.models.calibration import tau_normalised_logits

N, C = 4000, 500  # 8 MB of float32 logits; a chunk (below) is 80 kB of float64


@pytest.fixture
def logits(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 10_000)
    rng = np.random.default_rng(0)
    values = rng.standard_normal((N, C), dtype=np.float32)
    labels = rng.integers(0, C, N)
    return values, labels


def _peak(compute):
    """(result, the most bytes allocated at once while computing it, beyond what existed before)."""
    tracemalloc.start()
    try:
        result = compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_metrics_and_the_per_sample_summary_hold_a_chunk_not_the_logits(logits):
    values, labels = logits
    counts = np.arange(C) + 1
    summary, peak = _peak(lambda: per_sample_summary(values, labels))
    assert peak < 0.1 * values.nbytes
    metrics, peak = _peak(lambda: evaluate(values, labels, counts, summary=summary))
    assert peak < 0.1 * values.nbytes  # before: an int64 argpartition of all logits, 2x their size
    # The same numbers as one pass over the whole array.
    top5 = np.argpartition(-values, kth=4, axis=1)[:, :5]
    assert metrics["top5"] == float(100.0 * (top5 == labels[:, None]).any(axis=1).mean())
    assert metrics["overall"] == float(100.0 * (values.argmax(axis=1) == labels).mean())


def test_post_hoc_adjustments_allocate_their_output_and_a_chunk(logits):
    values, _ = logits
    prior = log_prior(np.arange(C) + 1)
    target = target_log_prior(None, C, "uniform")
    weight = np.random.default_rng(1).normal(size=(C, 16))
    bias = np.random.default_rng(2).normal(size=C)
    for compute, whole in (
            (lambda: logit_adjusted(values, prior, 0.7), (values.astype(np.float64) - 0.7 * prior)),
            (lambda: prior_corrected(values, prior, target), values.astype(np.float64) - prior + target),
            (lambda: tau_normalised_logits(values, weight, bias, 0.5),
             (values.astype(np.float64) - bias) / np.linalg.norm(weight, axis=1) ** 0.5)):
        result, peak = _peak(compute)
        assert peak < 1.1 * values.nbytes  # the float32 output, not a float64 copy (2x) on top
        assert result.dtype == np.float32 and np.array_equal(result, whole.astype(np.float32))
