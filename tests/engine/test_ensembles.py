"""Ensemble weighting: the combination rules, the weight grid and the choice on val."""
import numpy as np
import pytest

from ltbench.core.errors import UserError
from ltbench.engine.ensembles import WeightedEnsemble, choose_weights, combine, member_scores, simplex_grid

SECTION = {"combine": "probs", "weights": None, "weight_step": 0.25, "adjust": None}


def test_probability_mean_is_the_weighted_mean_of_softmaxes():
    first = np.array([[2.0, 0.0]], dtype=np.float32)
    second = np.array([[0.0, 3.0]], dtype=np.float32)
    scores = [member_scores(z, "probs") for z in (first, second)]
    mixed = np.exp(combine(scores, [0.25, 0.75], "probs"))
    expected = 0.25 * np.exp(first) / np.exp(first).sum() + 0.75 * np.exp(second) / np.exp(second).sum()
    np.testing.assert_allclose(mixed, expected, rtol=1e-6)


def test_logit_adjustment_subtracts_the_scaled_log_prior():
    log_prior = np.log(np.array([0.9, 0.1], dtype=np.float32))
    logits = np.array([[1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(member_scores(logits, "logit_adjusted", log_prior, adjust=1.0),
                               logits - log_prior, rtol=1e-6)
    np.testing.assert_array_equal(member_scores(logits, "logit_adjusted", log_prior, adjust=0.0), logits)
    # Adjusted, the tail class wins: 1 - log 0.9 < 0 - log 0.1.
    assert combine([member_scores(logits, "logit_adjusted", log_prior, 1.0)], [1.0], "logit_adjusted").argmax() == 1


def test_the_weight_grid_covers_the_simplex():
    grid = simplex_grid(2, 0.25)
    np.testing.assert_allclose(grid, [[1, 0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0, 1]])
    three = simplex_grid(3, 0.5)
    assert len(three) == 6 and np.allclose(three.sum(axis=1), 1) and (three >= 0).all()
    with pytest.raises(UserError, match="must divide 1"):
        simplex_grid(2, 0.3)


def test_weights_are_chosen_where_val_accuracy_is_best():
    labels = np.array([0, 1, 2, 3])
    right = np.eye(4, dtype=np.float32) * 5  # always correct
    wrong = np.roll(np.eye(4, dtype=np.float32), 1, axis=1) * 5  # always wrong
    weights, accuracy = choose_weights([member_scores(wrong, "probs"), member_scores(right, "probs")], labels,
                                       "probs", 0.25)
    # w_wrong = 0.5 ties both members; the grid tries w_wrong = 1, 0.75, 0.5, 0.25 first: 0.25 wins.
    assert weights == [0.25, 0.75] and accuracy == 100.0


def test_a_weighted_ensemble_beats_each_member_when_they_err_on_different_images():
    labels = np.array([0, 0, 1, 1])
    # Member A is right on images 0-2 but sure about nothing; member B is right on 0, 1, 3 and sure.
    member_a = np.array([[0.3, 0], [0.3, 0], [0, 0.3], [0.3, 0]], dtype=np.float32)
    member_b = np.array([[4, 0], [4, 0], [2, 0], [0, 4]], dtype=np.float32)
    ensemble = WeightedEnsemble({**SECTION, "weight_step": 0.05}, 2, [10, 10])
    ensemble.fit([member_a, member_b], labels)
    assert ensemble.val_top1 == 100.0
    assert (ensemble([member_a, member_b]).argmax(axis=1) == labels).all()
    summary = ensemble.summary(["a", "b"], "val")
    assert summary["weights"] == ensemble.weights and abs(sum(ensemble.weights) - 1) < 1e-9


def test_fixed_weights_are_normalised_and_checked():
    ensemble = WeightedEnsemble({**SECTION, "weights": [1, 3]}, 2, [10, 10])
    assert ensemble.weights == [0.25, 0.75]
    ensemble.fit([np.zeros((1, 2)), np.zeros((1, 2))], [0])  # keeps them; only measures val
    assert ensemble.weights == [0.25, 0.75]
    for bad in ([1], [1, 2, 3], "half"):  # one weight per member
        with pytest.raises(UserError, match="ensemble.weights"):
            WeightedEnsemble({**SECTION, "weights": bad}, 2, [10, 10])
    with pytest.raises(UserError, match="ensemble.adjust"):
        WeightedEnsemble({**SECTION, "adjust": [1]}, 2, [10, 10])
    with pytest.raises(UserError, match="ensemble.combine"):
        WeightedEnsemble({**SECTION, "combine": "vote"}, 2, [10, 10])


@pytest.mark.parametrize("rule", ["probs", "logit_adjusted"])
def test_the_ensemble_holds_a_chunk_of_scores_and_gives_the_whole_array_numbers(rule, monkeypatch):
    """Issue 23: at iNaturalist's 24k x 8142 each member's probabilities and their weighted sums are
    0.8 GB apiece; the ensemble works a chunk of rows at a time, with the same weights and logits."""
    import tracemalloc

    from ltbench.core import chunks

    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 20_000)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 400, 3000)
    members = [rng.normal(size=(3000, 400)).astype(np.float32) + 3 * np.eye(400, dtype=np.float32)[labels] * m
               for m in (0.3, 0.6)]
    section = {**SECTION, "combine": rule, "adjust": [1.0, 0.0] if rule == "logit_adjusted" else None,
               "weight_step": 0.1}
    ensemble = WeightedEnsemble(section, 2, np.arange(400) + 1)
    tracemalloc.start()
    try:
        ensemble.fit(members, labels)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        logits = ensemble(members)
        _, call_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit_peak < 0.2 * members[0].nbytes  # before: both members' scores and a weighted sum, 3x
    assert call_peak < 1.2 * members[0].nbytes  # the output, and a chunk
    # The whole-array computation, as before.
    scores = [member_scores(z, rule, ensemble.log_prior, a) for z, a in zip(members, ensemble.adjust)]
    weights, accuracy = choose_weights(scores, labels, rule, 0.1)
    assert ensemble.weights == weights and ensemble.val_top1 == accuracy
    assert np.array_equal(logits, combine(scores, weights, rule))


@pytest.mark.parametrize("weights", ["[-1, 2]", "[0, 0]", "half", "[true, 1]"])
def test_weights_that_are_no_weights_are_refused_before_any_work(weights):
    from ltbench.config import RunRequest, parse_cfg_options, resolve

    options = parse_cfg_options(["members=[zeroshot,linear_probe]", f"ensemble.weights={weights}"])
    with pytest.raises(UserError, match=r"ensemble\.weights=.*expected (a list of finite numbers|numbers) >= 0"):
        resolve(RunRequest("clip_ensemble", "digits_lt", options=options))
