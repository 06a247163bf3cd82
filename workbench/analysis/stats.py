"""Statistics over per-sample score columns (pure functions; pandas/numpy in, plain floats out)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    if np.all(a == b):
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
