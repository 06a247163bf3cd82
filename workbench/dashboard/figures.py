"""Plotly figures for the dashboard's views: pure functions of arrays and tables, no Dash state."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.figures import PALETTE, plot_text

_MARGIN = dict(l=60, r=20, t=40, b=40)


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Unique axis labels 'i:token' (a categorical axis would merge repeated tokens)."""
    return [f"{i}:{plot_text(t)}" for i, t in enumerate(tokens)]


def heatmap(z: np.ndarray, *, x: Sequence[str] | None = None, y: Sequence[str] | None = None, title: str = "",
            colorscale: str = "Viridis", zmid: float | None = None, height: int = 420,
            xaxis: str = "", yaxis: str = "", zrange: tuple[float, float] | None = None,
            customdata: np.ndarray | None = None, hovertemplate: str = "%{y} · %{x}: %{z:.4f}<extra></extra>",
            colorbar: str | None = None) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=np.asarray(z, dtype=float), x=list(x) if x is not None else None,
                               y=list(y) if y is not None else None, colorscale=colorscale, zmid=zmid,
                               zmin=zrange[0] if zrange else None, zmax=zrange[1] if zrange else None,
                               customdata=customdata, hovertemplate=hovertemplate,
                               colorbar=dict(title=dict(text=colorbar)) if colorbar else None))
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
    fig.update_xaxes(**layer_ticks(max((len(v) for v in series.values()), default=0)))
    return fig


def layer_ticks(n_layers: int) -> dict[str, Any]:
    """Whole-number layer ticks (at most ~16 of them)."""
    return dict(tickmode="linear", tick0=0, dtick=max(1, -(-n_layers // 16)))


def probe_accuracy(by_layer: pd.DataFrame) -> go.Figure:
    """Held-out probe accuracy by layer with its CI, against the random-label control."""
    fig = layer_lines({"probe accuracy": by_layer["accuracy"].to_numpy(),
                       "control (permuted labels)": by_layer["control_accuracy"].to_numpy()},
                      title="Probe accuracy by layer", yaxis="accuracy",
                      errors={"probe accuracy": (by_layer["ci95_low"].to_numpy(), by_layer["ci95_high"].to_numpy())})
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(by_layer))), ticktext=[str(l) for l in by_layer["layer"]])
    return fig


def attribution_bars(tokens: Sequence[str], values: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=token_labels(tokens[:len(values)]), y=np.asarray(values, dtype=float),
                           marker_color=["#c0392b" if v >= 0 else "#2e86c1" for v in values]))
    fig.update_layout(title=title, height=340, margin=_MARGIN, yaxis_title="attribution")
    return fig


def score_plot(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]], *, title: str) -> go.Figure:
    """Dot-and-whisker plot of a leaderboard: per headline scope (`columns`: grid field, axis label), each run's
    primary metric with its 95% CI, the runs side by side in their own colours."""
    fig = go.Figure()
    for i, row in enumerate(rows):
        pts = [(label, row[f], row.get(f + "_lo"), row.get(f + "_hi"), row.get(f + "_label", ""))
               for f, label in columns if row.get(f) is not None]
        if not pts:
            continue
        v = np.array([p[1] for p in pts], dtype=float)
        lo = np.array([np.nan if p[2] is None else p[2] for p in pts], dtype=float)
        hi = np.array([np.nan if p[3] is None else p[3] for p in pts], dtype=float)
        color = PALETTE[i % len(PALETTE)]
        fig.add_scatter(x=[plot_text(p[0]) for p in pts], y=v, mode="markers", name=plot_text(row["label"]),
                        marker=dict(color=color, size=9), error_y=dict(type="data", symmetric=False, array=hi - v,
                                                                      arrayminus=v - lo, color=color, thickness=1.5),
                        customdata=[[plot_text(p[4]), p[2], p[3], plot_text(row["run_id"])] for p in pts],
                        hovertemplate="%{customdata[3]}<br>%{x}: %{customdata[0]} = %{y:.3f} "
                                      "[%{customdata[1]:.3f}, %{customdata[2]:.3f}]<extra></extra>")
    fig.update_layout(title=plot_text(title), height=460, margin=dict(l=60, r=20, t=50, b=40),
                      scattermode="group", scattergap=0.5, yaxis_title="score (mean, 95% CI)",
                      legend=dict(orientation="h", y=-0.25, x=0))
    fig.update_xaxes(tickangle=0, automargin=True)
    return fig


def target_by_layer(prob: np.ndarray, rank: np.ndarray | None, positions: Sequence[str], target: str) -> go.Figure:
    """Logit lens: the target token's probability by layer (one line per position) and, below, its rank."""
    from plotly.subplots import make_subplots

    prob = np.asarray(prob, dtype=float)
    layers = list(range(prob.shape[0]))
    fig = make_subplots(rows=2 if rank is not None else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.6, 0.4] if rank is not None else None)
    for j, pos in enumerate(positions):
        color = PALETTE[j % len(PALETTE)]
        r1 = None if rank is None else np.asarray(rank, dtype=float)[:, j] + 1
        fig.add_scatter(x=layers, y=prob[:, j], mode="lines+markers", name=pos, legendgroup=pos, line=dict(color=color),
                        customdata=r1, row=1, col=1,
                        hovertemplate=f"{pos} · L%{{x}}: p=%{{y:.4f}}" + (", rank %{customdata:.0f}" if r1 is not None
                                                                          else "") + "<extra></extra>")
        if r1 is not None:
            fig.add_scatter(x=layers, y=r1, mode="lines+markers", name=pos, legendgroup=pos, showlegend=False,
                            line=dict(color=color, dash="dot"), row=2, col=1,
                            hovertemplate=f"{pos} · L%{{x}}: rank %{{y:.0f}}<extra></extra>")
    fig.update_yaxes(title_text=f"P({plot_text(repr(target))})", rangemode="tozero", row=1, col=1)
    if rank is not None:
        fig.update_yaxes(title_text="rank (1 = top)", type="log", autorange="reversed", row=2, col=1)
    fig.update_xaxes(**layer_ticks(len(layers)))
    fig.update_xaxes(title_text="layer", row=2 if rank is not None else 1, col=1)
    fig.update_layout(title=f"Target {plot_text(repr(target))} by layer", height=520 if rank is not None else 380,
                      margin=dict(l=70, r=20, t=40, b=40), legend=dict(title=dict(text="position")))
    return fig


def token_color(value: float, scale: float) -> str:
    """Red for positive, blue for negative attribution; opacity by |value| relative to the largest."""
    a = 0.0 if scale <= 0 else min(1.0, abs(value) / scale)
    rgb = "192,57,43" if value >= 0 else "46,134,193"
    return f"rgba({rgb},{a * 0.85:.3f})"


def unit_histogram(counts: np.ndarray, edges: np.ndarray, title: str) -> go.Figure:
    """One unit's activation histogram (log counts)."""
    centers = (np.asarray(edges[:-1], dtype=float) + np.asarray(edges[1:], dtype=float)) / 2
    fig = go.Figure(go.Bar(x=centers, y=np.asarray(counts, dtype=float), marker_color="#1f5fa8"))
    fig.update_layout(title=plot_text(title), height=300, margin=_MARGIN, xaxis_title="activation",
                      yaxis_title="tokens", yaxis_type="log", bargap=0.02)
    return fig


def log_frequency(freq: np.ndarray) -> go.Figure:
    """Histogram of log10 firing frequency of SAE latents (dead latents counted apart)."""
    f = np.asarray(freq, dtype=float)
    alive = f[f > 0]
    fig = go.Figure(go.Histogram(x=np.log10(alive), nbinsx=40, marker_color="#1f5fa8"))
    fig.update_layout(title=f"Latent firing frequency (log10); {int((f == 0).sum())} latents never fire",
                      height=300, margin=_MARGIN, xaxis_title="log10 share of tokens", yaxis_title="latents")
    return fig


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
           "attribution_bars", "score_plot", "target_by_layer", "layer_ticks", "token_color", "token_labels", "plot_text",
           "PALETTE", "trace_heatmap", "role_heatmap", "circuit_graph", "faithfulness_curve", "unit_histogram",
           "log_frequency"]
