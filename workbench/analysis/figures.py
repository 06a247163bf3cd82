"""Comparison figures and rows shared by the HTML report and the dashboard (plotly; no Dash)."""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from workbench.analysis.compare import Comparison
from workbench.analysis.text import as_text, metric_label, neutralize_bidi, run_labels
from workbench.store.samples import better

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def plot_text(text: Any) -> str:
    """Text for a plotly label: plotly reads a small HTML subset in labels, so model text is escaped (and
    bidi controls shown, not obeyed)."""
    return html.escape(neutralize_bidi(str(text)), quote=False)


def _num(v: Any, digits: int = 3) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return round(float(v), digits) if isinstance(v, float) else v


def _scope_name(p) -> str:
    return f"[{p.scope.name}]" if p.scope.kind == "group" else p.scope.name


def paired_rows(c: Comparison, alpha: float = 0.05) -> list[dict[str, Any]]:
    """The primary-metric rows of a comparison, numbers as numbers; `better` by the metric's direction."""
    labels = run_labels(c.runs)
    out = []
    for p in c.paired:
        if not p.primary:
            continue
        d = c.direction(p.metric, p.scope.name if p.scope.kind == "task" else None)
        s = p.stats
        out.append({"candidate": p.candidate, "candidate_label": as_text(labels[p.candidate]), "scope": _scope_name(p),
                    "kind": p.scope.kind, "metric": metric_label(p.metric, d), "direction": d, "n": s.n,
                    "baseline_mean": _num(s.mean_a, 4), "candidate_mean": _num(s.mean_b, 4), "delta": _num(s.delta, 4),
                    "ci95_low": _num(s.ci95_low, 4), "ci95_high": _num(s.ci95_high, 4), "p": _num(s.p_value, 6),
                    "p_adjusted": _num(p.p_adjusted, 6), "test": getattr(s, "test", None),
                    "significant": "yes" if p.p_adjusted == p.p_adjusted and p.p_adjusted < alpha else "",
                    "better": better(s.delta, p.metric, {p.metric: d}) if s.delta else None,
                    "subject": p.scope.subject is not None})
    return out


def forest(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Paired deltas with their 95% CIs: one row per scope · metric, each candidate in its own colour and
    offset within the row; filled markers are significant after correction, ◆ a group, ● a task."""
    fig = go.Figure()
    cats = list(dict.fromkeys(f"{r['scope']} · {r['metric']}" for r in rows))
    cands = list(dict.fromkeys(r["candidate"] for r in rows))
    step = 0.7 / len(cands) if len(cands) > 1 else 0.0
    for j, cand in enumerate(cands):
        part = [r for r in rows if r["candidate"] == cand and r["delta"] is not None]
        if not part:
            continue
        color = PALETTE[j % len(PALETTE)]
        offset = (j - (len(cands) - 1) / 2) * step
        delta = np.array([r["delta"] for r in part], dtype=float)
        lo = np.array([np.nan if r["ci95_low"] is None else r["ci95_low"] for r in part], dtype=float)
        hi = np.array([np.nan if r["ci95_high"] is None else r["ci95_high"] for r in part], dtype=float)
        symbols = [("diamond" if r["kind"] == "group" else "circle") + ("" if r["significant"] else "-open")
                   for r in part]
        fig.add_scatter(x=delta, y=[cats.index(f"{r['scope']} · {r['metric']}") + offset for r in part], mode="markers",
                        name=plot_text(part[0]["candidate_label"]),
                        marker=dict(color=color, size=10, symbol=symbols, line=dict(color=color, width=2)),
                        error_x=dict(type="data", symmetric=False, array=hi - delta, arrayminus=delta - lo, color=color,
                                     thickness=1.5),
                        customdata=[[plot_text(f"{r['scope']} · {r['metric']}"), r["n"], r["p_adjusted"],
                                     {True: "better", False: "worse"}.get(r["better"], "–"), r["ci95_low"], r["ci95_high"],
                                     plot_text(cand)] for r in part],
                        hovertemplate="%{customdata[6]}<br>%{customdata[0]}: Δ=%{x:+.3f} [%{customdata[4]:+.3f}, "
                                      "%{customdata[5]:+.3f}] (%{customdata[3]})<br>n=%{customdata[1]}, "
                                      "p_adj=%{customdata[2]:.3g}<extra></extra>")
    fig.add_vline(x=0, line_dash="dash", line_color="#888")
    fig.update_yaxes(tickvals=list(range(len(cats))), ticktext=[plot_text(c) for c in cats], autorange="reversed",
                     range=None, automargin=True)
    fig.update_layout(xaxis_title="Δ candidate − baseline (paired bootstrap 95% CI); filled = significant after "
                                  "correction, ◆ group, ● task",
                      height=max(300, int(34 * len(cats) * max(1.0, 0.6 * len(cands))) + 160),
                      margin=dict(l=60, r=20, t=30, b=60), showlegend=True,
                      legend=dict(orientation="h", y=-0.2, x=0, title=dict(text="candidate")))
    return fig
