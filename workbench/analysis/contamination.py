"""Accuracy on clean vs contaminated items: a stored contamination result joined to compared runs.

Items are joined by the run store's key (task, doc_id, prompt_hash). For each run and headline scope
(groups and ungrouped tasks) the scope's primary metric is split into clean items and items the
result flags as contaminated (items too short to test, or not in the result, are counted apart); the
difference contaminated - clean gets a bootstrap CI and Fisher's exact test (binary scores) or a
permutation test, Holm-corrected (or as the comparison's correction) across each run's scopes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis import stats
from workbench.analysis.compare import Comparison, ComparisonError, Scope, headline_scopes, scope_mask
from workbench.store.contamination import KEY, ContaminationResult


@dataclass
class SplitRow:
    """One run on one scope: clean (x) vs contaminated (y) items."""

    run_id: str
    scope: Scope
    metric: str
    stats: stats.TwoSampleComparison
    n_untested: int
    p_adjusted: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.scope.kind, "name": self.scope.name, "metric": self.metric,
                "n_untested": self.n_untested, **self.stats.to_dict(), "p_adjusted": self.p_adjusted}


@dataclass
class ContaminationSplit:
    result_id: str
    ngram: int
    rule: str
    n_items: int            # items in the compared runs
    n_covered: int          # of which the result has a row
    n_contaminated: int
    rows: list[SplitRow]

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result_id, "ngram": self.ngram, "rule": self.rule, "n_items": self.n_items,
                "n_covered": self.n_covered, "n_contaminated": self.n_contaminated,
                "rows": [r.to_dict() for r in self.rows]}


def flags_for(items: pd.DataFrame, result: ContaminationResult) -> pd.Series:
    """Per compared item: True (contaminated), False (clean) or NA (untested or not in the result)."""
    table = result.items[list(KEY) + ["contaminated"]].drop_duplicates(list(KEY))
    keys = items[list(KEY)].astype({"doc_id": "int64"})
    merged = keys.merge(table.astype({"doc_id": "int64"}), on=list(KEY), how="left")
    return pd.Series(merged["contaminated"].astype("boolean").to_numpy(), index=items.index)


def split_by_contamination(c: Comparison, result: ContaminationResult, *, n_boot: int = 2000,
                           seed: int = 0) -> ContaminationSplit:
    """Clean vs contaminated items per run and headline scope; ComparisonError if the result covers none."""
    base = c.items[c.baseline.run_id]
    flags = flags_for(base, result)
    covered = int(base[list(KEY)].merge(result.items[list(KEY)].drop_duplicates(), on=list(KEY)).shape[0])
    if covered == 0:
        raise ComparisonError(f"contamination result {result.result_id} covers none of the compared items (joined by "
                              "task, doc_id, prompt_hash); scan these runs' items, e.g. `workbench contamination "
                              f"--run {c.baseline.run_id} --corpus ...`")
    primary = {(l.run_id, l.scope): l.metric for l in c.leaderboard}
    rows: list[SplitRow] = []
    for run in c.runs:
        df = c.items[run.run_id]  # aligned with the baseline row for row
        run_rows = []
        for scope in headline_scopes(c.scopes):
            metric = primary.get((run.run_id, scope))
            if metric is None:
                continue
            mask = scope_mask(df, scope)
            f = flags[mask]
            values = df.loc[mask, metric]
            if aggregates_only(values):
                continue
            x = values[(f == False).fillna(False).to_numpy()].to_numpy(float)  # noqa: E712 (nullable boolean)
            y = values[(f == True).fillna(False).to_numpy()].to_numpy(float)  # noqa: E712
            s = stats.two_sample_compare(x, y, n_boot=n_boot, seed=seed)
            run_rows.append(SplitRow(run.run_id, scope, metric, s, int(f.isna().sum())))
        for r, p in zip(run_rows, stats.adjust_pvalues([r.stats.p_value for r in run_rows], c.correction)):
            r.p_adjusted = float(p)
        rows += run_rows
    return ContaminationSplit(result.result_id, int(result.manifest.get("ngram", 0)),
                              str(result.manifest.get("rule", "")), len(base), covered,
                              int(flags.fillna(False).sum()), rows)


def aggregates_only(values: pd.Series) -> bool:
    """A scope whose primary metric has no per-item values (nothing to split)."""
    return not np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy(float)).any()


__all__ = ["ContaminationSplit", "SplitRow", "flags_for", "split_by_contamination"]
