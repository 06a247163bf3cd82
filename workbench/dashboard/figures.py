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


TRACE_COLORS = {"state": "Purples", "mlp": "Greens", "attn": "Reds"}
TRACE_LABELS = {"state": "residual stream", "mlp": "MLP output", "attn": "attention output"}


def trace_heatmap(grid: np.ndarray, tokens: Sequence[str], start: int, end: int, kind: str, title: str) -> go.Figure:
    """ROME's causal-trace heatmap: tokens (subject ones starred) x layers, P(target) with that cell restored."""
    labels = [f"{i}:{plot_text(t)}{'*' if start <= i < end else ''}" for i, t in enumerate(tokens[:grid.shape[1]])]
    fig = go.Figure(go.Heatmap(z=np.asarray(grid, dtype=float).T, x=list(range(grid.shape[0])), y=labels,
                               colorscale=TRACE_COLORS.get(kind, "Viridis"), colorbar=dict(title="P"),
                               hovertemplate="layer %{x} · %{y}: %{z:.4f}<extra></extra>"))
    fig.update_layout(title=plot_text(title), height=max(300, 22 * len(labels) + 140), margin=_MARGIN,
                      xaxis_title=f"restored {TRACE_LABELS.get(kind, kind)} at layer", yaxis_title="token")
    fig.update_yaxes(autorange="reversed")
    return fig


def role_heatmap(avg: np.ndarray, roles: Sequence[str], kind: str, title: str) -> go.Figure:
    """Average indirect effect by token role (rows) and layer (columns)."""
    fig = go.Figure(go.Heatmap(z=np.asarray(avg, dtype=float).T, x=list(range(avg.shape[0])), y=list(roles),
                               colorscale=TRACE_COLORS.get(kind, "Viridis"), colorbar=dict(title="AIE"),
                               hovertemplate="layer %{x} · %{y}: %{z:.4f}<extra></extra>"))
    fig.update_layout(title=plot_text(title), height=320, margin=_MARGIN,
                      xaxis_title=f"restored {TRACE_LABELS.get(kind, kind)} at layer", yaxis_title="token role")
    fig.update_yaxes(autorange="reversed")
    return fig


def _circuit_pos(name: str, n_heads: int, n_kv: int, n_layers: int) -> tuple[float, float]:
    """Layout of a circuit node: heads left to right per layer, KV inputs just below their group, MLP right."""
    if name == "input":
        return (n_heads / 2, -1.0)
    if name == "logits":
        return (n_heads / 2, float(n_layers))
    layer_part, _, rest = name.partition(".")
    layer = float(layer_part[1:])
    if layer_part.startswith("m"):
        return (n_heads + 1.0, layer)
    if rest.startswith("kv"):
        g = int(rest.split(".")[0][2:])
        gs = n_heads // n_kv
        return (g * gs + (gs - 1) / 2 + (-0.25 if rest.endswith(".k") else 0.25), layer - 0.35)
    return (float(rest.split(".")[0][1:]), layer)


def circuit_graph(edges: pd.DataFrame, score: str, n_layers: int, n_heads: int, n_kv: int, title: str) -> go.Figure:
    """Circuit as a network: nodes by layer, edge width by |score|, red where removing the edge lowers the metric."""
    fig = go.Figure()
    if len(edges):
        mag = np.abs(edges[score].to_numpy(dtype=float))
        top = float(mag.max()) or 1.0
        buckets = np.minimum((mag / top * 4).astype(int), 3)
        for sign, color in ((-1, "rgba(192,57,43,0.6)"), (1, "rgba(46,134,193,0.6)")):
            for b in range(4):
                sel = edges[(buckets == b) & ((np.sign(edges[score].to_numpy()) >= 0) == (sign > 0))]
                xs, ys = [], []
                for up, down in zip(sel["upstream"], sel["downstream"]):
                    (x0, y0), (x1, y1) = (_circuit_pos(up, n_heads, n_kv, n_layers),
                                          _circuit_pos(down.removesuffix(".q"), n_heads, n_kv, n_layers))
                    xs += [x0, x1, None]
                    ys += [y0, y1, None]
                if xs:
                    fig.add_scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1 + 2 * b), hoverinfo="skip",
                                    showlegend=False)
    names = set(edges["upstream"]) | {d.removesuffix(".q") for d in edges["downstream"]} if len(edges) else set()
    names |= {"input", "logits"}
    pts = sorted(names, key=lambda n: _circuit_pos(n, n_heads, n_kv, n_layers)[::-1])
    xy = [_circuit_pos(n, n_heads, n_kv, n_layers) for n in pts]
    fig.add_scatter(x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers+text", text=pts, textposition="top center",
                    textfont=dict(size=9), hovertemplate="%{text}<extra></extra>", showlegend=False,
                    marker=dict(size=9, color=["#555" if ".kv" in n else "#2c3e50" for n in pts],
                                symbol=["diamond" if ".kv" in n else "square" if n.startswith("m") else "circle"
                                        for n in pts]))
    fig.update_layout(title=plot_text(title), height=max(420, 24 * n_layers + 160), margin=_MARGIN,
                      xaxis=dict(title=f"head (KV inputs: diamonds below their group; MLP at {n_heads + 1})",
                                 zeroline=False),
                      yaxis=dict(title="layer", zeroline=False))
    return fig


def faithfulness_curve(curve: pd.DataFrame, threshold: float, k: int | None = None) -> go.Figure:
    """Faithfulness of the top-K edges against K (log axis; K = 0 is not drawn), one line per method."""
    fig = go.Figure()
    for method, part in curve[curve["k"] > 0].groupby("method", sort=False):
        part = part.sort_values("k")
        fig.add_scatter(x=part["k"], y=part["faithfulness"], mode="lines+markers", name=str(method),
                        customdata=part["edges_on_path"],
                        hovertemplate="K=%{x}: %{y:.3f} (%{customdata} edges on paths)<extra></extra>")
    fig.add_hline(y=threshold, line_dash="dash", line_color="#888")
    if k:
        fig.add_vline(x=k, line_dash="dot", line_color="#c0392b")
    fig.update_layout(title="Faithfulness of the top-K edges", height=420, margin=_MARGIN, xaxis_type="log",
                      xaxis_title="edges kept (K)", yaxis_title="faithfulness", legend=dict(orientation="h", y=-0.2))
    return fig


__all__ = ["heatmap", "attention_pattern", "head_score_overview", "layer_lines", "probe_accuracy",
           "attribution_bars", "token_color", "token_labels", "plot_text", "trace_heatmap", "role_heatmap",
           "circuit_graph", "faithfulness_curve"]
