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


def reliability(c: Comparison, rows: Sequence[Any]) -> go.Figure:
    """Reliability diagrams (`analysis.calibration` rows): accuracy against mean confidence in each
    equal-mass bin, one panel per scope, one trace per run; the diagonal is perfect calibration."""
    from plotly.subplots import make_subplots

    scopes = list(dict.fromkeys(r.scope for r in rows))
    cols = min(3, max(1, len(scopes)))
    nrows = max(1, -(-len(scopes) // cols))
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[plot_text(s.name) for s in scopes] or [""],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if nrows > 1 else 0.1)
    labels = run_labels(c.runs)
    run_ids = [r.run_id for r in c.runs]
    for i, scope in enumerate(scopes):
        row, col = i // cols + 1, i % cols + 1
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="#999"), showlegend=False,
                        hoverinfo="skip", row=row, col=col)
        for r in (x for x in rows if x.scope == scope):
            k = run_ids.index(r.run_id)
            ece = r.estimates.get("ece")
            biggest = max((b["n"] for b in r.bins), default=1) or 1
            fig.add_scatter(
                x=[b["confidence"] for b in r.bins], y=[b["accuracy"] for b in r.bins], mode="lines+markers",
                name=plot_text(labels[r.run_id]), legendgroup=r.run_id, showlegend=i == 0,
                line=dict(color=PALETTE[k % len(PALETTE)]),
                marker=dict(size=[6 + 10 * b["n"] / biggest for b in r.bins]),
                customdata=[[b["n"], ece.value if ece else float("nan")] for b in r.bins],
                hovertemplate="confidence %{x:.3f}<br>accuracy %{y:.3f}<br>n=%{customdata[0]} · ECE %{customdata[1]:.3f}"
                              "<extra></extra>", row=row, col=col)
        fig.update_xaxes(range=[0, 1], row=row, col=col)
        fig.update_yaxes(range=[0, 1], row=row, col=col)
    fig.update_layout(height=320 * nrows + 80, margin=dict(t=40), legend=dict(orientation="h", y=-0.08),
                      xaxis_title="mean confidence (equal-mass bins)", yaxis_title="accuracy")
    return fig
