"""Calibration of each compared run on its multiple-choice scopes: accuracy, mean confidence, ECE, Brier
and selective accuracy with CIs, and the equal-mass bins of a reliability diagram.

Paired differences between runs (ECE, Brier, selective accuracy) are rows of the comparison itself
(`compare_runs` pairs aggregate metrics like any other, with the same corrections); this is the
per-run summary the report and the dashboard draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.analysis import stats
from workbench.analysis.compare import Comparison, Scope, headline_scopes, scope_estimate, scope_mask
from workbench.scoring import aggregates
from workbench.scoring.aggregates import calibration as cal

# In display order; ECE and Brier are lower-is-better (workbench.store.samples).
METRICS = (cal.CORRECT, cal.CONFIDENCE, "ece", "brier", f"selective_acc@{cal.COVERAGE}")


@dataclass
class CalibrationRow:
    """One run on one headline scope."""

    run_id: str
    scope: Scope
    estimates: dict[str, stats.Estimate]
    bins: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.scope.kind, "name": self.scope.name,
                "metrics": {k: v.to_dict() for k, v in self.estimates.items()}, "reliability_bins": self.bins}


def calibration_rows(c: Comparison, *, n_boot: int = 2000, seed: int = 0) -> list[CalibrationRow]:
    """Per run and headline scope with calibration columns (multiple-choice tasks scored by argmax)."""
    out = []
    for scope in headline_scopes(c.scopes):
        for run in c.runs:
            df = c.items[run.run_id]
            part = df.loc[scope_mask(df, scope)]
            if any(col not in part.columns for col in (cal.CONFIDENCE, cal.CORRECT)) or \
                    not part[cal.CONFIDENCE].notna().any():
                continue
            # Accuracy on the calibrated items only: the accuracy their confidence is compared with.
            calibrated = part[part[cal.CONFIDENCE].notna()]
            est = {m: scope_estimate(calibrated, scope, m, n_boot=n_boot, seed=seed) for m in METRICS
                   if m in calibrated.columns or aggregates.is_aggregate(m)}
            out.append(CalibrationRow(run.run_id, scope, est,
                                      cal.reliability_bins(calibrated[cal.CONFIDENCE], calibrated[cal.CORRECT])))
    return out


__all__ = ["METRICS", "CalibrationRow", "calibration_rows"]
