"""Statistics of `ltbench compare` against hand / scipy values, and comparisons of synthetic records."""
import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ltbench.core.errors import UserError
from ltbench.records import stats
from ltbench.records.compare import compare, parse_selector, render, resolve_side
from ltbench.records.per_sample import per_sample_file_for, save_per_sample

GROUPS3 = np.array(["many", "few", "few"], dtype=object)


def test_point_statistics_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    result = stats.point_statistics(np.array([1, 0, 1, 1, 0, 1.0]), labels, GROUPS3)
    # per-class means 1/2, 2/3, 1
    assert result["overall"] == pytest.approx(100 * 4 / 6)
    assert result["many"] == pytest.approx(50.0)
    assert result["few"] == pytest.approx(100 * (2 / 3 + 1) / 2)
    assert result["mean_per_class"] == pytest.approx(100 * (1 / 2 + 2 / 3 + 1) / 3)
    assert result["medium"] is None


def test_bootstrap_of_identical_or_constant_runs_is_exact():
    labels = np.repeat([0, 1, 2], 10)
    zero = stats.within_class_bootstrap(np.zeros(30), labels, GROUPS3, 100, seed=0)
    assert stats.percentile_interval(zero["overall"]) == [0.0, 0.0] and zero["medium"] is None
    # Class 0 always +1, the others 0: within-class resampling keeps class 0's 10 images.
    scores = (labels == 0).astype(float)
    result = stats.within_class_bootstrap(scores, labels, GROUPS3, 100, seed=0)
    np.testing.assert_allclose(result["overall"], 100 / 3)
    np.testing.assert_allclose(result["many"], 100.0)


def test_bootstrap_spread_matches_the_analytic_value_for_one_class():
    # One class of 200 paired images: 30 where only B is right (+1), 20 where only A is (-1).
    scores = np.array([1.0] * 30 + [-1.0] * 20 + [0.0] * 150)
    replicates = stats.within_class_bootstrap(scores, np.zeros(200, dtype=np.int64), np.array(["many"], dtype=object),
                                              20_000, seed=1)["overall"]
    # Variance of the mean of 200 draws with replacement: (E[d^2] - E[d]^2) / 200.
    assert replicates.std() == pytest.approx(100 * np.sqrt((50 / 200 - (10 / 200) ** 2) / 200), rel=0.03)
    assert replicates.mean() == pytest.approx(5.0, abs=0.1)


def test_bootstrap_matches_resampling_indices_within_class():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), [5, 10, 20, 40])
    scores = rng.choice([-1.0, 0.0, 1.0], size=len(labels), p=[0.2, 0.5, 0.3])
    groups = np.array(["many", "many", "medium", "few"], dtype=object)
    ours = stats.within_class_bootstrap(scores, labels, groups, 10_000, seed=0)
    naive = {name: [] for name in stats.STATISTICS}
    members = [np.flatnonzero(labels == c) for c in range(4)]
    for _ in range(10_000):
        picked = np.concatenate([rng.choice(index, size=len(index)) for index in members])
        for name, value in stats.point_statistics(scores[picked], labels[picked], groups).items():
            naive[name].append(value)
    for name in ("overall", "many", "few", "mean_per_class"):
        standard_error = ours[name].std() * np.sqrt(2 / 10_000)  # of the difference of the two means
        assert ours[name].mean() == pytest.approx(np.mean(naive[name]), abs=5 * standard_error)
        assert ours[name].std() == pytest.approx(np.std(naive[name]), rel=0.05)


def test_bootstrap_depends_on_seed_only_not_threads():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 50, size=2000)
    scores = rng.choice([-1.0, 0.0, 1.0], size=2000)
    groups = np.array(["many"] * 20 + ["medium"] * 20 + ["few"] * 10, dtype=object)
    one = stats.within_class_bootstrap(scores, labels, groups, 1000, seed=5, threads=1)
    two = stats.within_class_bootstrap(scores, labels, groups, 1000, seed=5, threads=2)
    other = stats.within_class_bootstrap(scores, labels, groups, 1000, seed=6)
    np.testing.assert_array_equal(one["overall"], two["overall"])
    assert not np.array_equal(one["overall"], other["overall"])


def test_mcnemar_exact_by_hand():
    a = np.array([True] * 3 + [True] + [False] * 6 + [False] * 2)
    b = np.array([True] * 3 + [False] + [True] * 6 + [False] * 2)
    result = stats.mcnemar_exact(a, b)
    # 7 discordant images, 6 where only B is right: 2 * P(X >= 6), X ~ Binomial(7, 1/2) = 2 * 8 / 128.
    assert (result["only_a"], result["only_b"]) == (1, 6) and result["p"] == pytest.approx(0.125)
    assert stats.mcnemar_exact(a, a)["p"] == 1.0


def test_seed_tests_against_scipy_and_by_hand():
    differences = [1.0, 2.0, 0.5]
    mean, sd = np.mean(differences), np.std(differences, ddof=1)
    by_hand = 2 * scipy_stats.t.sf(mean / (sd / np.sqrt(3)), df=2)
    assert stats.seed_test(differences, "t") == pytest.approx(by_hand)
    assert stats.seed_test(differences, "t") == pytest.approx(scipy_stats.ttest_rel([2.0, 3.0, 1.5], [1.0, 1.0, 1.0]).pvalue)
    # Four positive differences: exact signed-rank p = 2 / 2^4.
    assert stats.seed_test([1.0, 2.0, 0.5, 3.0], "wilcoxon") == pytest.approx(0.125)
    assert stats.seed_test([1.0], "t") is None and stats.seed_test([1.0, 1.0], "t") is None


def test_holm_and_bonferroni_by_hand():
    assert stats.adjust_p_values([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert stats.adjust_p_values([0.01, 0.04, 0.03], "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    # m = 2 (None does not count): 0.5 * 2 = 1.0; then max(1.0, 0.6 * 1).
    assert stats.adjust_p_values([0.5, None, 0.6], "holm") == [1.0, None, 1.0]
    assert stats.adjust_p_values([0.2, None, 0.01], "holm") == pytest.approx([0.2, None, 0.02])
    assert stats.adjust_p_values([0.2, 0.3], "none") == [0.2, 0.3]


def test_parse_selector():
    assert parse_selector("linear_probe") == ("linear_probe", None, None)
    assert parse_selector("linear_probe:RN50:openai@abc123") == ("linear_probe", "RN50:openai", "abc123")
    assert parse_selector("ballad@ff") == ("ballad", None, "ff")


# ------------------------------------------------------------------ synthetic records on disk

CLASS_COUNTS = [150, 60, 10]
LABELS = np.repeat([0, 1, 2], 20)


def _write_run(results, method, seed, correct, fingerprint="fp", config_hash="c" * 64, backbone="tiny"):
    """A record and per-sample file whose top-1 is right exactly where `correct` says."""
    run_dir = results / "runs" / "toy"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{method}__{config_hash[:6]}__seed{seed}.json"
    predicted = np.where(correct, LABELS, (LABELS + 1) % 3)
    summary = {"labels": LABELS.astype(np.int32), "top_k": predicted[:, None].astype(np.int32),
               "top_prob": np.full((60, 1), 0.6, np.float32), "true_prob": np.where(correct, 0.6, 0.2).astype(np.float32),
               "sq_sum": np.full(60, 0.44, np.float32)}
    entry = save_per_sample(per_sample_file_for(path), {"test": (summary, fingerprint)})
    record = {"schema": 1, "run_id": path.stem, "method": method, "dataset": "toy", "backbone": backbone, "seed": seed,
              "eval_split": "test", "config_hash": config_hash, "class_counts": CLASS_COUNTS, "shot_counts": CLASS_COUNTS,
              "created": f"2026-01-01T00:00:0{seed}.000000+00:00", "per_sample": entry,
              "metrics": {"overall": 100 * float(np.mean(correct)), "many": 0, "medium": 0, "few": 0,
                          "shot_rule": "standard", "per_class_accuracy": [0, 0, 0]}}
    path.write_text(json.dumps(record))
    return path


def test_compare_two_records(tmp_path):
    a = np.zeros(60, dtype=bool)
    a[:10] = True  # class 0: 10 of 20 right
    b = a.copy()
    b[20:30] = True  # B also gets 10 of class 1 right
    path_a, path_b = _write_run(tmp_path, "a", 0, a), _write_run(tmp_path, "b", 0, b)
    result = compare([resolve_side(str(path_a), tmp_path, None), resolve_side(str(path_b), tmp_path, None)], resamples=200)
    [entry] = result["comparisons"]
    overall = entry["statistics"]["overall"]
    assert (overall["a"], overall["b"], overall["difference"]) == pytest.approx((100 / 6, 100 / 3, 100 / 6))
    assert entry["statistics"]["medium"]["difference"] == pytest.approx(50.0)  # class 1: 0 -> 50%
    assert entry["statistics"]["many"]["ci"] == [0.0, 0.0]  # class 0 is identical in both
    assert entry["mcnemar"][0] == {"only_a": 0, "only_b": 10, "p": pytest.approx(2 / 2 ** 10)}
    assert entry["test"] == "mcnemar-exact" and result["correction"] == "none"
    text = render(result, "md")
    assert "| Overall" in text and "+16.67" in text and "McNemar" in text
    assert json.loads(render(result, "json"))["comparisons"][0]["p"] == pytest.approx(2 / 2 ** 10)


def test_compare_seeds_paired_with_t_test_and_holm(tmp_path):
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        base = rng.random(60) < 0.5
        _write_run(tmp_path, "a", seed, base)
        better = base.copy()
        better[rng.choice(60, 3 + seed, replace=False)] = True
        _write_run(tmp_path, "b", seed, better, config_hash="d" * 64)
        _write_run(tmp_path, "c", seed, base, config_hash="e" * 64)
    sides = [resolve_side(name, tmp_path, "toy") for name in ("a", "b:tiny@dd", "c")]
    assert [side.seeds for side in sides] == [[0, 1, 2]] * 3
    result = compare(sides, resamples=100, seed_test="t")
    first, second = result["comparisons"]
    differences = first["statistics"]["overall"]["per_seed_differences"]
    assert first["seeds"] == [0, 1, 2] and first["test"] == "t over 3 seeds"
    assert first["statistics"]["overall"]["difference"] == pytest.approx(np.mean(differences))
    assert first["p"] == pytest.approx(scipy_stats.ttest_1samp(differences, 0).pvalue)
    assert second["p"] is None and second["p_adjusted"] is None  # identical runs: t undefined
    assert first["p_adjusted"] == pytest.approx(first["p"])  # one defined p-value: m = 1
    assert result["correction"] == "holm" and "holm correction" in render(result, "md")


def test_compare_errors(tmp_path):
    correct = np.ones(60, dtype=bool)
    path_a = _write_run(tmp_path, "a", 0, correct)
    path_b = _write_run(tmp_path, "b", 0, correct, fingerprint="other")
    _write_run(tmp_path, "a", 1, correct, config_hash="f" * 64)
    sides = [resolve_side(str(path_a), tmp_path, None), resolve_side(str(path_b), tmp_path, None)]
    with pytest.raises(UserError, match=r"b__cccccc__seed0\.json and .*a__cccccc__seed0\.json were evaluated on different images"):
        compare(sides, resamples=10)
    with pytest.raises(UserError, match="matches 2 configurations on toy"):
        resolve_side("a", tmp_path, "toy")
    with pytest.raises(UserError, match="no run of 'zzz' on toy"):
        resolve_side("zzz", tmp_path, "toy")
    with pytest.raises(UserError, match="pass --dataset"):
        resolve_side("a", tmp_path, None)
    with pytest.raises(UserError, match="run record not found"):
        resolve_side(str(tmp_path / "nope.json"), tmp_path, None)
