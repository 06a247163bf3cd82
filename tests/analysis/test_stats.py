"""Statistics against scipy/statsmodels references, closed forms, and simulation at known rates."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import binom, binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from workbench.analysis import stats as S


def _from_table(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired binary arrays (a, b) with the 2x2 table [[a1b1, a1b0], [a0b1, a0b0]]."""
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, dtype=float)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, dtype=float)
    return a, b


def _binomial_tolerance(p: float, trials: int, k: float = 3.5) -> float:
    return k * np.sqrt(p * (1 - p) / trials)


# ---- reference agreement -----------------------------------------------------------------------
@pytest.mark.parametrize("table", [(30, 12, 3, 55), (10, 0, 0, 10), (5, 7, 9, 2), (40, 1, 9, 0), (0, 25, 11, 4)])
def test_mcnemar_matches_statsmodels_and_scipy(table):
    n11, n10, n01, n00 = table
    a, b = _from_table(*table)
    res = S.paired_compare(a, b, n_boot=200)
    ref = mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue
    assert res.test == "mcnemar-exact"
    assert res.p_value == pytest.approx(ref, rel=1e-12)
    if n10 + n01:
        assert res.p_value == pytest.approx(binomtest(n01, n10 + n01, 0.5).pvalue, rel=1e-12)
    assert (res.n_a_only, res.n_b_only) == (n10, n01)
    assert res.delta == pytest.approx((n01 - n10) / sum(table))
    assert res.mean_a == pytest.approx((n11 + n10) / sum(table))


def test_permutation_test_equals_exact_sign_flip_enumeration():
    rng = np.random.default_rng(3)
    a = rng.normal(size=11)
    b = a + rng.normal(0.4, 1.0, size=11)
    d = b - a
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    null = np.abs((flips * d).mean(axis=1))
    ref = np.mean(null >= abs(d.mean()) - 1e-12)
    res = S.paired_compare(a, b)
    assert res.test == "permutation"
    assert res.p_value == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("method,sm", [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")])
def test_adjust_pvalues_matches_statsmodels(method, sm):
    p = np.array([0.001, 0.01, 0.02, 0.04, 0.3, 0.8])
    np.testing.assert_allclose(S.adjust_pvalues(p, method), multipletests(p, method=sm)[1])


def test_adjust_pvalues_hand_values_and_nan():
    p = [0.01, np.nan, 0.001, 0.04, 0.02, 0.3]
    holm = S.adjust_pvalues(p, "holm")  # m = 5 (NaN is not a test)
    np.testing.assert_allclose(holm[[2, 0, 4, 3, 5]], [0.005, 0.04, 0.06, 0.08, 0.3])
    assert np.isnan(holm[1])
    bh = S.adjust_pvalues(p, "bh")
    np.testing.assert_allclose(bh[[2, 0, 4, 3, 5]], [0.005, 0.025, 0.1 / 3, 0.05, 0.3])
    with pytest.raises(ValueError):
        S.adjust_pvalues(p, "sidak-typo")


def test_mdd_mean_matches_statsmodels_power():
    for n, sd in [(30, 1.0), (200, 0.4), (1000, 2.5)]:
        effect = NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=0)
        # statsmodels also counts the far tail and solves numerically: agreement to ~1e-5
        assert S.mdd_mean(n, sd) == pytest.approx(effect * sd, rel=1e-4)


def test_mdd_binary_solves_connor_sample_size_formula():
    from scipy.stats import norm

    za, zb = norm.ppf(0.975), norm.ppf(0.8)
    for n, pd in [(100, 0.3), (500, 0.2), (5000, 0.05)]:
        d = S.mdd_binary(n, pd)
        n_back = (za * np.sqrt(pd) + zb * np.sqrt(pd - d * d)) ** 2 / d ** 2
        assert n_back == pytest.approx(n, rel=1e-6)
    assert S.mdd_binary(500, 0.1) < S.mdd_binary(500, 0.3)  # more discordance, harder to detect
    assert S.mdd_binary(2000, 0.2) < S.mdd_binary(500, 0.2)
    assert np.isnan(S.mdd_binary(3, 0.2)) and np.isnan(S.mdd_binary(100, 0.0))


def test_mean_estimate_api_unchanged():
    x = [1, 0, 1, 1, 0, 1, np.nan]
    e = S.mean_estimate(x, seed=1)
    v = np.array([1, 0, 1, 1, 0, 1.0])
    assert (e.value, e.n) == (pytest.approx(v.mean()), 6)
    assert e.stderr == pytest.approx(v.std(ddof=1) / np.sqrt(6))
    assert set(e.to_dict()) == {"value", "stderr", "ci95_low", "ci95_high", "n"}


# ---- simulation: McNemar at its exact size and power -------------------------------------------------
def _mcnemar_exact_rate(n: int, pd: float, delta: float, alpha: float = 0.05) -> float:
    """Exact rejection probability of the two-sided exact McNemar test (scipy binomial sums)."""
    q = (pd + delta) / (2 * pd)
    total = 0.0
    for k in range(1, n + 1):
        pk = binom.pmf(k, n, pd)
        if pk < 1e-14:
            continue
        j = np.arange(k + 1)
        p = np.minimum(1, 2 * np.minimum(binom.cdf(j, k, 0.5), binom.sf(j - 1, k, 0.5)))
        total += pk * binom.pmf(j, k, q)[p < alpha].sum()
    return total


def _simulated_mcnemar_rate(n: int, pd: float, delta: float, seeds: int, alpha: float = 0.05) -> float:
    counts = np.random.default_rng(7).multinomial(n, [(pd + delta) / 2, (pd - delta) / 2, 1 - pd], size=seeds)
    return float(np.mean([S.mcnemar_exact(int(n01), int(n10)) < alpha for n01, n10, _ in counts]))


def test_no_difference_false_positive_rate_is_alpha():
    n, pd, seeds = 500, 0.2, 2000
    size = _mcnemar_exact_rate(n, pd, 0.0)
    assert 0.03 < size <= 0.05  # exact McNemar is slightly conservative
    rate = _simulated_mcnemar_rate(n, pd, 0.0, seeds)
    assert abs(rate - size) < _binomial_tolerance(size, seeds)
    assert rate < 0.05 + _binomial_tolerance(0.05, seeds)


@pytest.mark.parametrize("n,pd", [(500, 0.2), (200, 0.3)])
def test_planted_difference_found_at_nominal_power(n, pd):
    seeds = 1500
    delta = S.mdd_binary(n, pd, power=0.8)
    power = _mcnemar_exact_rate(n, pd, delta)
    assert abs(power - 0.8) < 0.05  # the MDD's normal approximation against the exact test
    rate = _simulated_mcnemar_rate(n, pd, delta, seeds)
    assert abs(rate - power) < _binomial_tolerance(power, seeds)


def test_permutation_test_size_and_power():
    rng = np.random.default_rng(11)
    n, seeds, sd = 40, 300, 1.0
    base = rng.normal(size=(seeds, n))
    noise = rng.normal(0, sd, size=(seeds, n))
    null = [S.paired_permutation_pvalue(base[i], base[i] + noise[i], n_resamples=999, seed=i) < 0.05
            for i in range(seeds)]
    assert abs(np.mean(null) - 0.05) < _binomial_tolerance(0.05, seeds)
    shift = S.mdd_mean(n, sd)
    alt = [S.paired_permutation_pvalue(base[i], base[i] + noise[i] + shift, n_resamples=999, seed=i) < 0.05
           for i in range(seeds)]
    # the z-based MDD is slightly optimistic at n=40 (t vs normal): exact power about 0.78
    assert abs(np.mean(alt) - 0.78) < _binomial_tolerance(0.78, seeds) + 0.02


def test_paired_bootstrap_ci_excludes_zero_at_about_alpha_under_no_difference():
    rng = np.random.default_rng(5)
    n, seeds, pd = 300, 300, 0.2
    excl = 0
    for s in range(seeds):
        a = (rng.random(n) < 0.6).astype(float)
        disc = rng.random(n) < pd
        b = np.where(disc, 1 - a, a)
        # discordant pairs split evenly in expectation: make each direction equally likely
        b = np.where(disc & (rng.random(n) < 0.5), a, b)
        a = np.where(disc & (b == a), 1 - a, a)
        r = S.paired_compare(a, b, n_boot=1000, seed=s)
        excl += not (r.ci95_low <= 0 <= r.ci95_high)
    assert abs(excl / seeds - 0.05) < _binomial_tolerance(0.05, seeds) + 0.015


# ---- clustered bootstrap ------------------------------------------------------------------------
def test_cluster_bootstrap_with_singleton_clusters_matches_item_bootstrap():
    x = np.random.default_rng(0).normal(size=400)
    boots = S.cluster_bootstrap_means(x, np.arange(400), n_boot=4000, seed=1)
    assert boots.std() == pytest.approx(x.std(ddof=1) / 20, rel=0.06)
    assert boots.mean() == pytest.approx(x.mean(), abs=0.01)


def test_cluster_bootstrap_draws_stay_within_their_clusters():
    # cluster "a" holds only 0s and "b" only 1s: a boot mean is the share of items drawn from "b"
    x = np.array([0.0] * 3 + [1.0] * 5)
    c = np.array(["a"] * 3 + ["b"] * 5)
    boots = S.cluster_bootstrap_means(x, c, n_boot=300, seed=0)
    assert set(np.round(boots, 6)) <= {0.0, 1.0, round(5 / 8, 6)}


def test_clustered_ci_covers_when_item_bootstrap_does_not():
    """Items correlated within subjects: the two-stage bootstrap keeps ~95% coverage, the naive one does not."""
    rng = np.random.default_rng(2)
    k, m, seeds = 25, 12, 200
    clusters = np.repeat(np.arange(k), m)
    cover_cl = cover_naive = 0
    for s in range(seeds):
        p = rng.beta(1.5, 1.5, size=k)        # subject difficulty; population mean 0.5
        x = (rng.random(k * m) < p[clusters]).astype(float)
        cl = S.clustered_estimate(x, clusters, n_boot=800, seed=s)
        nv = S.mean_estimate(x, n_boot=800, seed=s)
        cover_cl += cl.ci95_low <= 0.5 <= cl.ci95_high
        cover_naive += nv.ci95_low <= 0.5 <= nv.ci95_high
    assert cover_cl / seeds > 0.95 - _binomial_tolerance(0.95, seeds) - 0.03
    assert cover_naive / seeds < 0.8
    assert S.clustered_estimate(x, clusters).stderr > S.mean_estimate(x).stderr


def test_clustered_estimate_falls_back_for_one_cluster():
    x = [1, 0, 1, 1]
    assert S.clustered_estimate(x, ["s"] * 4, seed=3) == S.mean_estimate(x, seed=3)


def test_paired_compare_drops_items_missing_in_either_run():
    a = np.array([1, 0, np.nan, 1])
    b = np.array([1, 1, 0, np.nan])
    r = S.paired_compare(a, b, n_boot=100)
    assert r.n == 2 and r.delta == pytest.approx(0.5)


# ---- statistics of a set of items (aggregate metrics) --------------------------------------------
def _mean_stat(x):
    return np.atleast_2d(x).mean(axis=1)


@pytest.mark.parametrize("n", [5, 9, 12])
def test_paired_statistic_on_the_mean_is_the_exact_sign_flip_test(n):
    """Swapping an item's two results negates its difference: for the mean, the swap test is the
    paired sign-flip permutation test, whose exact p-value scipy enumerates for small n."""
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(0.8, size=n)
    res = S.paired_statistic(_mean_stat, [a], [b], n_boot=500)
    assert res.delta == pytest.approx(b.mean() - a.mean())
    assert res.p_value == pytest.approx(S.paired_permutation_pvalue(a, b))
    assert res.ci95_low <= res.delta <= res.ci95_high and res.test == "permutation-swap"


def test_paired_compare_of_one_continuous_item_has_p_one():
    """A single pair (a scope where one item has the metric in both runs) has two sign flips of equal |mean|."""
    r = S.paired_compare([0.2, np.nan], [0.7, 0.1])
    assert r.n == 1 and r.test == "permutation" and r.p_value == 1.0 and r.delta == pytest.approx(0.5)
    assert S.paired_permutation_pvalue([0.2], [0.7]) == 1.0


def test_paired_statistic_random_permutations_agree_with_exact_and_drop_nan():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=40), rng.normal(0.3, size=40)
    approx = S.paired_statistic(_mean_stat, [a], [b], n_perm=20000, n_boot=300)
    exact = S.paired_permutation_pvalue(a, b, n_resamples=20000)
    assert approx.p_value == pytest.approx(exact, abs=0.01)
    a2, b2 = np.append(a, np.nan), np.append(b, 5.0)
    assert S.paired_statistic(_mean_stat, [a2], [b2], n_boot=100).n == 40
    same = S.paired_statistic(_mean_stat, [a], [a], n_boot=100)
    assert same.p_value == 1.0 and same.delta == 0


def test_statistic_estimate_of_the_mean_matches_mean_estimate():
    x = np.random.default_rng(1).random(80)
    e = S.statistic_estimate(_mean_stat, [x], n_boot=2000, seed=3)
    m = S.mean_estimate(x, n_boot=2000, seed=3)
    assert e.value == pytest.approx(m.value) and e.n == 80
    assert e.stderr == pytest.approx(m.stderr, rel=0.15)          # bootstrap SD ~ closed form
    assert e.ci95_low == pytest.approx(m.ci95_low, abs=0.02) and e.ci95_high == pytest.approx(m.ci95_high, abs=0.02)
    clustered = S.statistic_estimate(_mean_stat, [x], clusters=np.repeat(np.arange(8), 10), n_boot=300)
    assert clustered.value == pytest.approx(x.mean()) and clustered.ci95_low < x.mean() < clustered.ci95_high


def test_bootstrap_indices_stay_within_clusters():
    clusters = np.repeat(["a", "b", "c"], [2, 5, 1])
    for (idx,) in S.bootstrap_indices(8, n_boot=50, seed=0, clusters=clusters):
        drawn = clusters[idx]
        for c in "abc":   # a cluster is drawn whole-sized: its count is a multiple of its size
            assert (drawn == c).sum() % (clusters == c).sum() == 0


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.random((5, 60)) < 0.4
    scores = np.round(rng.normal(labels * 0.7), 1)                 # with ties
    assert S.auroc(scores, labels) == pytest.approx([roc_auc_score(l, s) for l, s in zip(labels, scores)])
    assert np.isnan(S.auroc(np.arange(4.0), np.ones(4))[0])


def test_two_sample_compare_matches_scipy():
    from scipy.stats import fisher_exact, permutation_test

    x, y = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1.0]), np.array([1, 1, 1, 1, 1, 1, 0, 1.0])
    r = S.two_sample_compare(x, y)
    assert r.test == "fisher-exact" and r.delta == pytest.approx(y.mean() - x.mean())
    assert r.p_value == pytest.approx(fisher_exact([[7, 3], [7, 1]]).pvalue)
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=15), rng.normal(1.0, size=12)
    c = S.two_sample_compare(u, v, seed=4)
    ref = permutation_test((v, u), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
                           permutation_type="independent", n_resamples=9999, rng=np.random.default_rng(4))
    assert c.test == "permutation" and c.p_value == pytest.approx(ref.pvalue)
    assert c.ci95_low <= c.delta <= c.ci95_high
    assert S.two_sample_compare(x, []).test == "none"


@pytest.mark.parametrize("aggregation", ["weighted_perplexity", "bits_per_byte", "weighted_mean"])
def test_ratio_estimate_is_lm_evals_aggregation_with_a_bootstrap_ci(aggregation):
    from lm_eval.api import metrics as M

    rng = np.random.default_rng(3)
    ll, counts = -rng.gamma(5.0, 20.0, size=200), rng.integers(20, 400, size=200).astype(float)
    est = S.ratio_estimate(ll, counts, aggregation, seed=7)
    assert est.value == pytest.approx(getattr(M, aggregation)(list(zip(ll, counts))), rel=1e-12)
    assert est.ci95_low < est.value < est.ci95_high and est.stderr > 0 and est.n == 200
    assert est == S.ratio_estimate(ll, counts, aggregation, seed=7)
    # The CI of the ratio covers its sampling spread: a 4x larger sample gives a CI about half as wide.
    big = S.ratio_estimate(np.tile(ll, 4), np.tile(counts, 4), aggregation, seed=7)
    assert 0.35 < (big.ci95_high - big.ci95_low) / (est.ci95_high - est.ci95_low) < 0.65
    one = S.ratio_estimate(ll[:1], counts[:1], aggregation)
    assert one.n == 1 and one.ci95_low == one.value == one.ci95_high
