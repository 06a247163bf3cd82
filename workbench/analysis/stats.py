"""Statistics over per-sample score columns (pure functions; pandas/numpy in, plain floats out)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# A statistic of a set of items (ECE, selective accuracy, AUROC, a weighted perplexity): given aligned
# per-item arrays of shape (batch, n) it returns shape (batch,), one value per row (bootstrap resample).
Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """Mean of per-sample scores with the closed-form stderr lm-eval reports and a bootstrap CI."""

    value: float
    stderr: float
    ci95_low: float
    ci95_high: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mean_estimate(values, *, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean, sample-std/sqrt(n) stderr (ddof=1, as lm-eval) and a 95% percentile bootstrap CI."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n == 1:
        return Estimate(mean, float("nan"), mean, mean, 1)
    stderr = float(x.std(ddof=1) / np.sqrt(n))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = x[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(mean, stderr, float(lo), float(hi), n)


# ---- ratio (weighted) aggregates ----------------------------------------------------------------
# lm-eval's aggregations over (numerator, denominator) items, f(sum num / sum den), by lm-eval's names:
# a scope's word/byte perplexity is exp(-sum ll / sum words|bytes), not the mean of per-item perplexities.
RATIO_AGGREGATIONS = {
    "weighted_mean": lambda r: r,
    "weighted_perplexity": lambda r: np.exp(-r),
    "bits_per_byte": lambda r: -r / np.log(2),
}


def ratio_estimate(num, den, aggregation: str, *, n_boot: int = 2000, seed: int = 0,
                   chunk_items: int = 4_000_000) -> Estimate:
    """f(sum num / sum den) over items, with a 95% percentile bootstrap CI (items resampled) and the
    bootstrap SD as stderr (lm-eval reports none for these aggregations)."""
    f = RATIO_AGGREGATIONS[aggregation]
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = len(a)
    if n == 0 or b.sum() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), n)
    value = float(f(a.sum() / b.sum()))
    if n == 1:
        return Estimate(value, float("nan"), value, value, 1)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    per_chunk = max(1, chunk_items // n)
    for lo in range(0, n_boot, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_boot - lo), n))
        boots[lo:lo + len(idx)] = f(a[idx].sum(axis=1) / b[idx].sum(axis=1))
    low, high = np.percentile(boots, [2.5, 97.5])
    return Estimate(value, float(boots.std(ddof=1)), float(low), float(high), n)


# ---- clustered bootstrap ------------------------------------------------------------------------
def cluster_bootstrap_means(values, clusters, *, n_boot: int = 2000, seed: int = 0,
                            chunk_items: int = 4_000_000) -> np.ndarray:
    """Two-stage bootstrap of the item-pooled mean: resample clusters, then items within each drawn cluster.

    Every drawn cluster gets its own independent within-cluster resample, even if drawn twice. Vectorised
    over boots in chunks so memory stays near `chunk_items` integers whatever the item count.
    """
    x = np.asarray(values, dtype=float)
    codes, inverse = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    xs = x[order]
    sizes = np.bincount(inverse, minlength=len(codes))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    k, n = len(codes), len(x)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    per_chunk = max(1, chunk_items // max(n, 1))
    for lo in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - lo)
        picks = rng.integers(0, k, size=(b, k))                      # stage 1: clusters
        counts = sizes[picks]                                       # (b, k) items per drawn cluster
        rep = np.repeat(picks.ravel(), counts.ravel())
        pos = starts[rep] + (rng.random(len(rep)) * sizes[rep]).astype(np.int64)  # stage 2: items
        boot_n = counts.sum(axis=1)
        bounds = np.concatenate([[0], np.cumsum(boot_n)[:-1]])
        out[lo:lo + b] = np.add.reduceat(xs[pos], bounds) / boot_n
    return out


def clustered_estimate(values, clusters, *, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean with a 95% CI from the two-stage cluster bootstrap; stderr is the bootstrap SD."""
    x = np.asarray(values, dtype=float)
    keep = ~np.isnan(x)
    x, c = x[keep], np.asarray(clusters, dtype=object)[keep]
    if len(x) < 2 or len(set(c.tolist())) < 2:
        return mean_estimate(x, n_boot=n_boot, seed=seed)
    boots = cluster_bootstrap_means(x, c, n_boot=n_boot, seed=seed)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(float(x.mean()), float(boots.std(ddof=1)), float(lo), float(hi), len(x))


# ---- paired comparison --------------------------------------------------------------------------
def is_binary(*arrays) -> bool:
    return all(np.isin(np.asarray(a, dtype=float), (0.0, 1.0)).all() for a in arrays)


def mcnemar_exact(n01: int, n10: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (statsmodels' binomial form)."""
    from statsmodels.stats.contingency_tables import mcnemar

    if n01 + n10 == 0:
        return 1.0
    return float(mcnemar([[0, n10], [n01, 0]], exact=True).pvalue)


def paired_permutation_pvalue(a, b, *, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided sign-flip permutation test of mean(b - a) = 0 (scipy; exact when 2^n is small)."""
    from scipy.stats import permutation_test

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.all(a == b) or len(a) < 2:  # one item: both sign flips give the same |mean|, so p = 1
        return 1.0
    res = permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                           vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                           rng=np.random.default_rng(seed))
    return float(res.pvalue)


def mdd_binary(n: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest paired accuracy difference McNemar detects with `power` for n items at this discordance.

    Connor's (1987) normal approximation, n = (z_a*sqrt(p_d) + z_b*sqrt(p_d - d^2))^2 / d^2, solved for d.
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    if n <= 0 or not discordance > 0:
        return float("nan")
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    top = np.sqrt(discordance)

    def f(d: float) -> float:
        return np.sqrt(n) * d - za * np.sqrt(discordance) - zb * np.sqrt(max(discordance - d * d, 0.0))

    if f(top) < 0:  # even a difference as large as the discordance is out of reach
        return float("nan")
    return float(brentq(f, 1e-12, top))


def mdd_mean(n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest paired mean difference a two-sided z-test detects with `power` given the SD of differences."""
    from scipy.stats import norm

    if n <= 0 or sd != sd:
        return float("nan")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / np.sqrt(n))


@dataclass(frozen=True)
class PairedComparison:
    """Candidate (b) minus baseline (a) on the same items."""

    n: int
    mean_a: float
    mean_b: float
    delta: float
    ci95_low: float
    ci95_high: float
    test: str                 # "mcnemar-exact" | "permutation" | "none"
    p_value: float
    n_a_only: int             # items right in a, wrong in b (binary) / b < a (continuous)
    n_b_only: int             # items wrong in a, right in b / b > a
    mdd: float                # minimum detectable |delta| at alpha=0.05, power=0.8
    clustered: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def paired_compare(a, b, *, clusters=None, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05, power: float = 0.8) -> PairedComparison:
    """Difference b - a with a paired (or clustered paired) bootstrap CI, an exact test and the MDD."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    c = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
    n = len(a)
    if n == 0:
        nan = float("nan")
        return PairedComparison(0, nan, nan, nan, nan, nan, "none", nan, 0, 0, nan)
    d = b - a
    delta = float(d.mean())
    clustered = c is not None and len(set(c.tolist())) > 1
    if n == 1:
        lo = hi = delta
    else:
        if clustered:
            boots = cluster_bootstrap_means(d, c, n_boot=n_boot, seed=seed)
        else:
            idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
            boots = d[idx].mean(axis=1)
        lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    n_a_only, n_b_only = int((d < 0).sum()), int((d > 0).sum())
    if is_binary(a, b):
        test, p = "mcnemar-exact", mcnemar_exact(n_b_only, n_a_only)
        mdd = mdd_binary(n, (n_a_only + n_b_only) / n, alpha=alpha, power=power)
    else:
        test, p = "permutation", paired_permutation_pvalue(a, b, seed=seed)
        mdd = mdd_mean(n, float(d.std(ddof=1)) if n > 1 else float("nan"), alpha=alpha, power=power)
    return PairedComparison(n, float(a.mean()), float(b.mean()), delta, lo, hi, test, p, n_a_only, n_b_only,
                            mdd, clustered)


# ---- statistics of a set of items (not means of per-item scores) --------------------------------------
def _complete(arrays: Sequence) -> tuple[list[np.ndarray], np.ndarray]:
    """The arrays restricted to the items where none is NaN, and that mask."""
    cols = [np.asarray(a, dtype=float) for a in arrays]
    keep = ~np.any([np.isnan(c) for c in cols], axis=0) if cols else np.zeros(0, bool)
    return [c[keep] for c in cols], keep


def bootstrap_indices(n: int, *, n_boot: int, seed: int, clusters=None,
                      chunk_items: int = 2_000_000) -> Iterator[np.ndarray]:
    """Resampled item indices, as (batch, n) blocks; with `clusters`, two-stage (clusters, then items in
    each drawn cluster) one resample at a time, since the resample's size varies."""
    rng = np.random.default_rng(seed)
    codes = None if clusters is None else np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    if codes is None or len(codes[0]) < 2:
        per = max(1, chunk_items // max(n, 1))
        for lo in range(0, n_boot, per):
            yield rng.integers(0, n, size=(min(per, n_boot - lo), n))
        return
    members = [np.flatnonzero(codes[1] == k) for k in range(len(codes[0]))]
    for _ in range(n_boot):
        picks = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[p][rng.integers(0, len(members[p]), size=len(members[p]))] for p in picks])[None, :]


def statistic_estimate(fn: Statistic, arrays: Sequence, *, clusters=None, n_boot: int = 2000,
                       seed: int = 0) -> Estimate:
    """A statistic of the items with a 95% percentile bootstrap CI over items (clustered when `clusters`
    is given); stderr is the bootstrap SD. Items with a NaN in any array are left out."""
    cols, keep = _complete(arrays)
    n = int(keep.sum())
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    value = float(fn(*(c[None, :] for c in cols))[0])
    if n == 1:
        return Estimate(value, float("nan"), value, value, 1)
    c = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
    boots = np.concatenate([fn(*(col[idx] for col in cols))
                            for idx in bootstrap_indices(n, n_boot=n_boot, seed=seed, clusters=c)])
    boots = boots[~np.isnan(boots)]  # a resample where the statistic is undefined (AUROC with one class)
    if len(boots) < 2:
        return Estimate(value, float("nan"), float("nan"), float("nan"), n)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return Estimate(value, float(boots.std(ddof=1)), float(lo), float(hi), n)


def _swap_masks(n: int, n_perm: int, rng: np.random.Generator, chunk_items: int) -> Iterator[np.ndarray]:
    """Which items swap runs in each permutation: all 2^n assignments when that is at most n_perm, else random."""
    if n < 31 and 2 ** n <= n_perm:
        codes = np.arange(2 ** n)[:, None]
        yield ((codes >> np.arange(n)) & 1).astype(bool)
        return
    per = max(1, chunk_items // max(n, 1))
    for lo in range(0, n_perm, per):
        yield rng.random((min(per, n_perm - lo), n)) < 0.5


def paired_statistic(fn: Statistic, arrays_a: Sequence, arrays_b: Sequence, *, clusters=None, n_boot: int = 2000,
                     n_perm: int = 9999, seed: int = 0, chunk_items: int = 2_000_000) -> PairedComparison:
    """Statistic of run b minus the same statistic of run a on the same items.

    CI: paired bootstrap (one resample of items, both runs scored on it; clustered when `clusters` is
    given). p: paired permutation test that swaps each item's two results between the runs (exact over
    all 2^n swaps when that is at most `n_perm`). Items with a NaN in either run are left out.
    """
    k = len(arrays_a)
    cols, keep = _complete(list(arrays_a) + list(arrays_b))
    a, b = cols[:k], cols[k:]
    n = int(keep.sum())
    nan = float("nan")
    if n == 0:
        return PairedComparison(0, nan, nan, nan, nan, nan, "none", nan, 0, 0, nan)
    va = float(fn(*(x[None, :] for x in a))[0])
    vb = float(fn(*(x[None, :] for x in b))[0])
    delta = vb - va
    if n == 1:
        lo = hi = delta
    else:
        c = None if clusters is None else np.asarray(clusters, dtype=object)[keep]
        boots = np.concatenate([fn(*(x[idx] for x in b)) - fn(*(x[idx] for x in a))
                                for idx in bootstrap_indices(n, n_boot=n_boot, seed=seed, clusters=c,
                                                             chunk_items=chunk_items)])
        lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    if delta == 0 or all(np.array_equal(x, y) for x, y in zip(a, b)):
        p = 1.0
    else:
        rng = np.random.default_rng(seed + 1)
        hits = total = 0
        tol = 1e-12 * max(1.0, abs(delta))
        exact = n < 31 and 2 ** n <= n_perm
        for mask in _swap_masks(n, n_perm, rng, chunk_items):
            pa = [np.where(mask, y, x) for x, y in zip(a, b)]
            pb = [np.where(mask, x, y) for x, y in zip(a, b)]
            stat = fn(*pb) - fn(*pa)
            hits += int((np.abs(stat) >= abs(delta) - tol).sum())
            total += len(stat)
        p = hits / total if exact else (hits + 1) / (total + 1)
    return PairedComparison(n, va, vb, delta, lo, hi, "permutation-swap", min(1.0, p), 0, 0, nan)


def auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of `scores` for binary `labels`, per row (ties count half): the
    Mann-Whitney U of the positives over n_pos * n_neg. NaN for a row with only one class."""
    from scipy.stats import rankdata

    scores, labels = np.atleast_2d(scores), np.atleast_2d(labels).astype(bool)
    ranks = rankdata(scores, axis=1)
    n_pos = labels.sum(axis=1)
    n_neg = labels.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * labels).sum(axis=1) - n_pos * (n_pos + 1) / 2
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


# ---- two independent samples (e.g. clean vs contaminated items) -----------------------------------
@dataclass(frozen=True)
class TwoSampleComparison:
    """Mean of sample y minus mean of sample x (independent items)."""

    n_x: int
    n_y: int
    mean_x: float
    mean_y: float
    delta: float
    ci95_low: float
    ci95_high: float
    test: str                 # "fisher-exact" | "permutation" | "none"
    p_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def two_sample_compare(x, y, *, n_boot: int = 2000, n_perm: int = 9999, seed: int = 0) -> TwoSampleComparison:
    """Difference of means with a bootstrap CI (each sample resampled on its own) and Fisher's exact test
    (binary scores) or a two-sample permutation test (continuous)."""
    from scipy.stats import fisher_exact, permutation_test

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    nan = float("nan")
    if len(x) == 0 or len(y) == 0:
        return TwoSampleComparison(len(x), len(y), float(x.mean()) if len(x) else nan,
                                   float(y.mean()) if len(y) else nan, nan, nan, nan, "none", nan)
    delta = float(y.mean() - x.mean())
    rng = np.random.default_rng(seed)
    boots = (y[rng.integers(0, len(y), size=(n_boot, len(y)))].mean(axis=1)
             - x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1))
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    if is_binary(x, y):
        kx, ky = int(x.sum()), int(y.sum())
        test, p = "fisher-exact", float(fisher_exact([[kx, len(x) - kx], [ky, len(y) - ky]]).pvalue)
    elif np.all(np.concatenate([x, y]) == x[0]):
        test, p = "permutation", 1.0
    else:
        res = permutation_test((y, x), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                               permutation_type="independent", vectorized=True, n_resamples=n_perm,
                               alternative="two-sided", rng=np.random.default_rng(seed))
        test, p = "permutation", float(res.pvalue)
    return TwoSampleComparison(len(x), len(y), float(x.mean()), float(y.mean()), delta, lo, hi, test, p)


# ---- multiple comparisons -----------------------------------------------------------------------
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Family-wise (Holm, default) or false-discovery-rate (BH) adjusted p-values; NaNs stay NaN."""
    from statsmodels.stats.multitest import multipletests

    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose from {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=float)
    out = p.copy()
    ok = ~np.isnan(p)
    if CORRECTIONS[method] and ok.any():
        out[ok] = multipletests(p[ok], method=CORRECTIONS[method])[1]
    return out
