"""Plotly figures for the dashboard's views: pure functions of arrays and tables, no Dash state."""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

_MARGIN = dict(l=60, r=20, t=40, b=40)


def plot_text(s: str) -> str:
    """Text for a plotly label: plotly reads a small HTML subset in labels, so model text is escaped."""
    return html.escape(str(s), quote=False)


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Unique axis labels 'i:token' (a categorical axis would merge repeated tokens)."""
    return [f"{i}:{plot_text(t)}" for i, t in enumerate(tokens)]


def heatmap(z: np.ndarray, *, x: Sequence[str] | None = None, y: Sequence[str] | None = None, title: str = "",
            colorscale: str = "Viridis", zmid: float | None = None, height: int = 420,
            xaxis: str = "", yaxis: str = "") -> go.Figure:
    fig = go.Figure(go.Heatmap(z=np.asarray(z, dtype=float), x=list(x) if x is not None else None,
                               y=list(y) if y is not None else None, colorscale=colorscale, zmid=zmid,
                               hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(title=plot_text(title), height=height, margin=_MARGIN, xaxis_title=xaxis, yaxis_title=yaxis)
    fig.update_yaxes(autorange="reversed")
    return fig


def attention_pattern(patterns: np.ndarray, row: int, head: int, tokens: Sequence[str], layer: int) -> go.Figure:
    """One head's attention pattern over the prompt (query rows, key columns)."""
    n = patterns.shape[-1]
    labels = token_labels(tokens[:n]) if len(tokens) >= n else [str(i) for i in range(n)]
    return heatmap(patterns[row, head], x=labels, y=labels, title=f"Attention pattern · layer {layer} head {head}",
                   colorscale="Blues", height=max(360, 16 * n + 140), xaxis="key", yaxis="query")


def head_score_overview(scores: pd.DataFrame, metric: str) -> go.Figure:
    """Layer x head grid of one head score (previous_token, induction, duplicate_token)."""
    grid = scores.pivot(index="layer", columns="head", values=metric).sort_index()
    return heatmap(grid.to_numpy(), x=[str(h) for h in grid.columns], y=[f"L{l}" for l in grid.index],
                   title=f"Head scores: {metric}", colorscale="Viridis", xaxis="head", yaxis="layer",
                   height=max(300, 22 * len(grid) + 120))


def layer_lines(series: dict[str, np.ndarray], *, title: str, yaxis: str, errors: dict[str, tuple] | None = None,
                height: int = 380) -> go.Figure:
    """One line per named per-layer series (optional asymmetric error bars)."""
    fig = go.Figure()
    for name, ys in series.items():
        err = (errors or {}).get(name)
        ys = np.asarray(ys, dtype=float)
        fig.add_scatter(x=list(range(len(ys))), y=ys, mode="lines+markers", name=name,
                        error_y=None if err is None else dict(type="data", symmetric=False, array=err[1] - ys,
                                                              arrayminus=ys - err[0]))
    fig.update_layout(title=title, height=height, margin=_MARGIN, xaxis_title="layer", yaxis_title=yaxis,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def probe_accuracy(by_layer: pd.DataFrame) -> go.Figure:
    """Held-out probe accuracy by layer with its CI, against the random-label control."""
    fig = layer_lines({"probe accuracy": by_layer["accuracy"].to_numpy(),
                       "control (permuted labels)": by_layer["control_accuracy"].to_numpy()},
                      title="Probe accuracy by layer", yaxis="accuracy",
                      errors={"probe accuracy": (by_layer["ci95_low"].to_numpy(), by_layer["ci95_high"].to_numpy())})
    fig.update_xaxes(tickvals=list(range(len(by_layer))), ticktext=[str(l) for l in by_layer["layer"]])
    return fig


def attribution_bars(tokens: Sequence[str], values: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=token_labels(tokens[:len(values)]), y=np.asarray(values, dtype=float),
                           marker_color=["#c0392b" if v >= 0 else "#2e86c1" for v in values]))
    fig.update_layout(title=title, height=340, margin=_MARGIN, yaxis_title="attribution")
    return fig


def token_color(value: float, scale: float) -> str:
    """Red for positive, blue for negative attribution; opacity by |value| relative to the largest."""
    a = 0.0 if scale <= 0 else min(1.0, abs(value) / scale)
    rgb = "192,57,43" if value >= 0 else "46,134,193"
    return f"rgba({rgb},{a * 0.85:.3f})"


__all__ = ["heatmap", "attention_pattern", "head_score_overview", "layer_lines", "probe_accuracy",
           "attribution_bars", "token_color", "token_labels", "plot_text"]
