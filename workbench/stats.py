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
