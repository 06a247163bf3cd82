"""Aggregate metrics: scores that are a statistic of a set of items (ECE, selective accuracy), not the
mean of a per-sample column (nor a ratio of sums a task declares, as lm-eval's weighted perplexity).

Each is registered once with the per-sample columns it reads and a vectorised `Statistic` (see
`workbench.analysis.stats`); the harness reports it per task and group with a bootstrap CI over items,
and `compare`/`gate` pair two runs on it with a paired bootstrap CI and a paired permutation test, under
the same multiple-comparison corrections as the per-sample metrics. A new one is one module here that
calls `@aggregate_metric(name, columns)`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.analysis import stats
from workbench.registry import Registry


@dataclass(frozen=True)
class Aggregate:
    """A statistic of the items, computed from aligned per-sample columns (items with a NaN left out)."""

    name: str
    columns: tuple[str, ...]
    fn: stats.Statistic
    help: str = ""


AGGREGATES: Registry[Aggregate] = Registry("aggregate metric", package=__name__)


def aggregate_metric(name: str, columns: Sequence[str], help: str = "") -> Callable[[stats.Statistic], stats.Statistic]:
    """Register `fn(*columns) -> value per row` as the aggregate metric `name`."""

    def deco(fn: stats.Statistic) -> stats.Statistic:
        AGGREGATES.register(name, Aggregate(name, tuple(columns), fn, help or (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return deco


def _columns(df: Any, agg: Aggregate) -> list[np.ndarray] | None:
    import pandas as pd

    if any(c not in df.columns for c in agg.columns):
        return None
    return [pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in agg.columns]


def available(df: Any) -> list[str]:
    """The aggregate metrics a samples frame can be scored on (every column present, one complete row)."""
    out = []
    for entry in AGGREGATES.entries():
        cols = None if entry.name in df.columns else _columns(df, entry.obj)
        if cols is not None and len(df) and (~np.any([np.isnan(c) for c in cols], axis=0)).any():
            out.append(entry.name)
    return out


def is_aggregate(name: str) -> bool:
    return name in AGGREGATES


def estimate(name: str, df: Any, *, clusters=None, n_boot: int = 2000, seed: int = 0) -> stats.Estimate:
    """The metric on the frame's items with a bootstrap CI over items (clustered when `clusters` is given)."""
    agg = AGGREGATES.get(name)
    return stats.statistic_estimate(agg.fn, _columns(df, agg) or [], clusters=clusters, n_boot=n_boot, seed=seed)


def paired(name: str, a: Any, b: Any, *, clusters=None, n_boot: int = 2000, seed: int = 0) -> stats.PairedComparison:
    """The metric of run b minus run a on the same (aligned) items: paired bootstrap CI, swap permutation p."""
    agg = AGGREGATES.get(name)
    return stats.paired_statistic(agg.fn, _columns(a, agg) or [], _columns(b, agg) or [], clusters=clusters,
                                  n_boot=n_boot, seed=seed)


__all__ = ["AGGREGATES", "Aggregate", "aggregate_metric", "available", "estimate", "is_aggregate", "paired"]
