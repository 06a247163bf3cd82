"""Interpretability views: one builder per artifact kind, registered with `@view("kind")`.

Every piece of model text (prompts, tokens) reaches the page as a text node or an escaped plotly label,
never as HTML.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import numpy as np
from dash import dcc, html

from workbench.analysis.text import as_text, clip, neutralize_bidi
from workbench.dashboard import figures as F
from workbench.registry import Registry

View = Callable[[Any], list]
VIEWS: Registry[View] = Registry("artifact view")
GRAPH_CONFIG = {"displaylogo": False}


def view(kind: str) -> Callable[[View], View]:
    """Register the page builder for artifact kind `kind`."""
    return VIEWS.register(kind)


def views() -> dict[str, View]:
    return {e.name: e.obj for e in VIEWS.entries()}


def graph(fig, id_: str | None = None) -> dcc.Graph:
    return dcc.Graph(figure=fig, config=GRAPH_CONFIG, **({"id": id_} if id_ else {}))


def provenance(result: Any) -> html.Div:
    m = result.meta
    src = m.source if isinstance(m.source, dict) else {}
    model = m.model if isinstance(m.model, dict) else {"spec": m.model}
    items = [html.Li(["model: ", html.Code(clip(model.get("spec"), 200))]),
             html.Li(["created: ", clip(m.created, 40)]),
             html.Li(["parameters: ", html.Code(", ".join(f"{k}={'–' if v is None else clip(v, 100)}"
                                                         for k, v in sorted(m.params.items()) if k != "weights"))])]
    if m.params.get("weights"):  # a quantized run's job ran on its unquantized weights (dashboard jobs)
        items.append(html.Li(["weights: ", clip(m.params["weights"], 400)], id="artifact-weights"))
    if isinstance(src.get("run_id"), str):
        task, doc = str(src.get("task", "")), str(src.get("doc_id", ""))
        href = f"/samples/{quote(src['run_id'])}?task={quote(task)}&sample={quote(task + '#' + doc)}"
        items.append(html.Li(["source: ", dcc.Link(as_text(f"{src['run_id']} / {task} #{doc}"),
                                                   href=href, id="artifact-source-link")]))
    prompts = [html.Pre(as_text(p), className="prompt") for p in m.prompts[:4]]
    return html.Div([html.Ul(items), html.Details([html.Summary(f"prompt{'s' if len(m.prompts) > 1 else ''}"), *prompts],
                                                 open=len(m.prompts) == 1)], className="provenance")


def _tokens(result: Any, i: int = 0) -> list[str]:
    return list(result.meta.tokens[i]) if result.meta.tokens and len(result.meta.tokens) > i else []


@view("attention")
def attention_view(r: Any) -> list:
    n_heads = r.patterns.shape[1]
    layer_opts = [{"label": f"layer {l}", "value": i} for i, l in enumerate(r.layers)]
    metrics = [c for c in ("induction", "previous_token", "duplicate_token") if c in r.head_scores.columns]
    return [
        html.Div([html.Label("Layer"), dcc.Dropdown(id="attn-layer", options=layer_opts, value=0, clearable=False),
                  html.Label("Head"), dcc.Dropdown(id="attn-head", options=[{"label": f"head {h}", "value": h}
                                                                          for h in range(n_heads)],
                                                   value=0, clearable=False)], className="controls"),
        graph(F.attention_pattern(r.patterns, 0, 0, _tokens(r), r.layers[0]), "attn-pattern"),
        html.Div([html.Label("Head score"), dcc.RadioItems(id="attn-score", options=metrics, value=metrics[0], inline=True)],
                 className="controls"),
        graph(F.head_score_overview(r.head_scores, metrics[0]), "attn-overview"),
        html.P(f"Induction heads (score above threshold{' at every length and seed' if r.by_setting is not None else ''}): "
               + (", ".join(f"L{int(l)}H{int(h)} ({s:.2f})" for l, h, s in r.induction_heads) or "none")
               + ("; unstable (above at some settings only): "
                  + ", ".join(f"L{int(l)}H{int(h)} ({m:.2f}, range {lo:.2f}–{hi:.2f})" for l, h, m, lo, hi in r.unstable_heads)
                  if r.unstable_heads else ""),
               className="note"),
    ]


_PATCH_FAMILIES = (("resid_pre", "residual stream (layer × position)"), ("head", "attention heads (layer × head)"),
                   ("attn_out", "attention output by layer"), ("mlp_out", "MLP output by layer"))


def _normalisable(r: Any) -> bool:
    """Whether recovery (patched − corrupt) / (clean − corrupt) is defined: clean and corrupted differ."""
    denom = r.clean_metric - r.corrupt_metric
    return bool(np.isfinite(denom)) and abs(denom) >= 1e-6 * max(1.0, abs(r.clean_metric))


@view("patching")
def patching_view(r: Any) -> list:
    toks = _tokens(r)
    normalised = _normalisable(r)
    what = ("cells show the normalised recovery (patched − corrupted) / (clean − corrupted) when that activation is "
            "patched from the clean run into the corrupted one: 1 = fully restored, 0 = no effect; hover for the raw "
            f"patched {r.metric}." if normalised else
            f"clean and corrupted {r.metric} are (nearly) equal, so recovery is undefined: cells show the raw patched "
            f"{r.metric}.")
    out: list = [html.P(f"metric {r.metric}: clean {r.clean_metric:.3f}, corrupted {r.corrupt_metric:.3f}; {what} "
                        + ("AtP vs exact Pearson r (on recovery): " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                                             r.correlation.items())
                           if r.correlation else ""), className="note", id="patch-note")]
    for fam, label in _PATCH_FAMILIES:
        row = []
        for method in ("exact", "atp"):
            raw = getattr(r, f"{method}_{fam}", None)
            if raw is None:
                continue
            raw = np.asarray(raw, dtype=float)
            rec = r.effect(fam, method) if normalised else None  # the result's own normalisation
            z = raw if rec is None else rec
            title = f"{'exact patching' if method == 'exact' else 'attribution patching'}: {label}"
            name = "recovery" if rec is not None else f"patched {r.metric}"
            if z.ndim == 1:
                fig = F.layer_lines({name: z}, title=title, yaxis=name)
                if rec is not None:  # the two reference levels: no effect and fully restored
                    fig.add_hline(y=0, line_dash="dot", line_color="#888")
                    fig.add_hline(y=1, line_dash="dot", line_color="#888")
            else:
                x = F.token_labels(toks[: z.shape[1]]) if fam == "resid_pre" and len(toks) >= z.shape[1] else \
                    [str(i) for i in range(z.shape[1])]
                top = max(1.0, float(np.nanmax(np.abs(z)))) if rec is not None and np.isfinite(z).any() else None
                fig = F.heatmap(z, x=x, y=[f"L{l}" for l in range(z.shape[0])], title=title, colorscale="RdBu",
                                zmid=0.0, zrange=(-top, top) if top else None, customdata=raw, colorbar=name,
                                hovertemplate=f"%{{y}} · %{{x}}: {name} %{{z:.3f}}<br>patched {r.metric} "
                                              "%{customdata:.4f}<extra></extra>",
                                xaxis="position" if fam == "resid_pre" else "head", yaxis="layer")
            row.append(html.Div(graph(fig, f"patch-{method}-{fam}"), className="half"))
        if row:
            out.append(html.Div(row, className="row"))
    return out


@view("probe")
def probe_view(r: Any) -> list:
    by = r.by_layer
    best = by.loc[by["layer"] == r.best_layer].iloc[0] if (by["layer"] == r.best_layer).any() else by.iloc[0]
    base = r.text_baseline
    fig = F.probe_accuracy(by)
    if base:
        fig.add_hline(y=base["accuracy"], line_dash="dash", line_color="#7f8c8d",
                      annotation_text=f"text-only baseline {base['accuracy']:.3f}", annotation_position="bottom right")
    return [html.P(f"dataset {r.dataset}, pooling {r.pool}; layer {r.best_layer} (picked on the {r.selection} split): "
                   f"test accuracy {best['accuracy']:.3f} [{best['ci95_low']:.3f}, {best['ci95_high']:.3f}], control "
                   f"{best['control_accuracy']:.3f}, selectivity {best['selectivity']:.3f}"
                   + (f"; text-only bag-of-words baseline {base['accuracy']:.3f} [{base['ci95_low']:.3f}, "
                      f"{base['ci95_high']:.3f}]" if base else ""), className="note"),
            graph(fig, "probe-accuracy"),
            graph(F.layer_lines({"selectivity": by["selectivity"].to_numpy()}, title="Selectivity (accuracy − control)",
                                yaxis="Δ accuracy", height=300))]


def highlighted_tokens(tokens: list[str], values: np.ndarray, id_: str) -> html.Div:
    """Tokens as text spans shaded by attribution (title shows the value)."""
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    return html.Div([html.Span(neutralize_bidi(t), title=f"{i}: {v:+.4f}", className="tok",
                               style={"backgroundColor": F.token_color(float(v), scale)})
                     for i, (t, v) in enumerate(zip(tokens, values))], id=id_, className="tokens")


@view("attribution")
def attribution_view(r: Any) -> list:
    toks = _tokens(r)
    return [html.P(f"target {r.target!r} ({r.objective}); f(input) {r.f_input:.3f}, f(baseline) {r.f_baseline:.3f}, "
                   f"completeness delta {r.delta:+.4f} ({r.relative_delta:.1%} of the difference"
                   + (f", {r.n_steps} steps" if r.n_steps else "") + ")", className="note"),
            html.H4("Integrated gradients"), highlighted_tokens(toks, np.asarray(r.ig), "attr-ig"),
            html.H4("Gradient × input"), highlighted_tokens(toks, np.asarray(r.grad_x_input), "attr-gxi"),
            graph(F.attribution_bars(toks, np.asarray(r.ig), "Integrated gradients per token"), "attr-bars")]


@view("logit_lens")
def logit_lens_view(r: Any) -> list:
    toks = _tokens(r)
    labels = F.token_labels(toks)
    out: list = []
    if r.target_prob is not None:
        tp = np.asarray(r.target_prob, dtype=float)
        names = [labels[p] if -len(toks) <= p < len(toks) else str(p) for p in r.positions][: tp.shape[1]]
        out += [html.P(["Target ", html.Code(repr(r.target), className="target"), ": its probability and rank at "
                        "each layer (the residual stream read through the final norm and unembedding); highlighted in "
                        "the tables below where it is among the top tokens."], className="note"),
                graph(F.target_by_layer(tp, r.target_rank, names, r.target), "lens-target")]
    for pos in r.positions:
        part = r.top[r.top["position"] == pos]
        if part.empty:
            continue
        k = int(part["rank"].max()) + 1
        head = html.Tr([html.Th("layer")] + [html.Th(f"#{i + 1}") for i in range(k)])
        body = []
        for layer, lp in part.groupby("layer", sort=True):
            cells = {int(x["rank"]): x for _, x in lp.iterrows()}
            body.append(html.Tr([html.Td(str(layer))] + [_lens_cell(cells.get(i), r.target_id) for i in range(k)]))
        at = toks[pos] if -len(toks) <= pos < len(toks) else "?"
        out += [html.H4(["Top next tokens after position ", str(pos), " (", html.Code(repr(at)), ")"]),
                html.Table([html.Thead(head), html.Tbody(body)], className="lens", id=f"lens-table-{pos}")]
    return out


def _lens_cell(cell: Any, target_id: int | None) -> html.Td:
    if cell is None:
        return html.Td("")
    hit = target_id is not None and int(cell["token_id"]) == int(target_id)
    return html.Td([html.Span(repr(str(cell["token"])), className="tok"), f" {cell['prob']:.3f}"],
                   className="target" if hit else None)


@view("drift")
def drift_view(r: Any) -> list:
    return [html.P(f"reference {r.reference} vs variant {r.variant}: {r.n_tokens} tokens; max |Δ logit| "
                   f"{r.max_abs_dlogit:.4f}", className="note"),
            graph(F.layer_lines({"mean cosine": r.cosine, "worst-token cosine": r.cosine_min},
                                title="Residual-stream cosine similarity by layer", yaxis="cosine"), "drift-cosine"),
            graph(F.layer_lines({"relative error": r.rel_error}, title="Relative error ||b − a|| / ||a|| by layer",
                                yaxis="relative error"), "drift-error")]


# ---- activation corpora, neurons, SAEs, features --------------------------------------------------
def _table(df: Any, cols: list[str], id_: str | None = None, fmt: dict[str, str] | None = None) -> html.Table:
    """A plain table of some columns of a DataFrame; cells are text."""
    fmt = fmt or {}

    def cell(c: str, v: Any) -> str:
        return format(v, fmt[c]) if c in fmt and isinstance(v, (int, float, np.floating, np.integer)) else str(v)

    return html.Table([html.Thead(html.Tr([html.Th(c) for c in cols])),
                       html.Tbody([html.Tr([html.Td(cell(c, getattr(r, c))) for c in cols]) for r in df.itertuples()])],
                      className="plain", **({"id": id_} if id_ else {}))


@view("activations")
def activations_view(r: Any) -> list:
    return [html.P(f"corpus {r.corpus_id}: {r.n_tokens:,} tokens, {r.n_docs:,} documents in {r.n_shards} shards at "
                   f"{r.path}; {r.tokens_per_s:,.0f} tokens/s, peak memory {r.peak_rss_mb:,.0f} MB", className="note"),
            html.H4("Sites"), html.Ul([html.Li([html.Code(k), f" ({v} units)"]) for k, v in r.sites.items()]),
            html.H4("Provenance (files read, with their sha256)"),
            _table(r.sources, ["file", "docs", "tokens", "sha256"], "activations-sources")]


def _unit_browser_link(r: Any) -> html.P:
    return html.P(dcc.Link(f"Open the {r.unit_name} browser (search by id or token)",
                           href=f"/features/{r.meta.id}", className="button", id="units-browser-link"))


@view("neurons")
def neurons_view(r: Any) -> list:
    top = r.stats.sort_values("max", ascending=False).head(30)
    return [html.P(f"{len(r.stats)} neurons of layer {r.layer} ({r.site}) over {r.n_tokens:,} tokens of corpus "
                   f"{r.corpus_id}", className="note"), _unit_browser_link(r),
            html.H4("Neurons with the largest activation"),
            _table(top, ["unit", "max", "mean", "density"], "neurons-top", {"max": ".3f", "mean": ".4f", "density": ".4f"})]


@view("features")
def features_view(r: Any) -> list:
    alive = r.stats[r.stats["n_fired"] > 0]
    top = alive.sort_values("n_fired", ascending=False).head(30)
    out = [html.P(f"{len(r.stats)} latents of SAE {r.sae_id} ({r.site}) over {r.n_tokens:,} tokens of corpus "
                  f"{r.corpus_id}; {len(alive)} fire at least once", className="note"),
           html.P(["SAE: ", dcc.Link(r.sae_id, href=f"/artifacts/{r.sae_id}")]), _unit_browser_link(r),
           html.H4("Most frequent features"),
           _table(top, ["unit", "max", "density"], "features-top", {"max": ".3f", "density": ".4f"})]
    if r.explanations is not None and len(r.explanations):
        out += [html.H4("Judge explanations (simulation correlation vs another feature's explanation)"),
                _table(r.explanations, ["unit", "explanation", "score", "control_score", "judge"], "features-judge",
                       {"score": ".3f", "control_score": ".3f"})]
    return out


def sae_metrics(e: dict[str, Any]) -> html.Table:
    keys = ["n_tokens", "variance_explained", "fvu", "l0", "dead", "dense", "ce_clean", "ce_sae", "ce_zero",
            "loss_recovered"]
    return html.Table([html.Tbody([html.Tr([html.Th(k), html.Td(f"{e[k]:.4f}" if isinstance(e[k], float) else str(e[k]))])
                                   for k in keys if k in e])], className="plain", id="sae-metrics")


@view("sae")
def sae_view(r: Any) -> list:
    out = [html.P(f"TopK SAE on {r.site}: {r.n_latents} latents (d_in {r.d_in}), k={r.k}; {r.train_tokens:,} training "
                  f"tokens of corpus {r.corpus_id}, {r.steps} steps in {r.seconds:.0f} s", className="note")]
    if r.evaluation:
        out += [html.H4("Held-out evaluation"), sae_metrics(r.evaluation)]
    if len(r.curve):
        fig = F.layer_lines({"training FVU": r.curve["fvu"].to_numpy()}, title="Training FVU (per logged step)",
                            yaxis="FVU", height=300)
        fig.update_xaxes(title="logged step")
        out.append(graph(fig, "sae-curve"))
    if r.frequency is not None:
        out.append(graph(F.log_frequency(np.asarray(r.frequency)), "sae-frequency"))
    return out


@view("sae_eval")
def sae_eval_view(r: Any) -> list:
    return [html.P(["SAE ", dcc.Link(r.sae_id, href=f"/artifacts/{r.sae_id}"), f" at {r.site}"], className="note"),
            sae_metrics(r.metrics), graph(F.log_frequency(np.asarray(r.frequency)), "sae-eval-frequency")]


def unit_link(explained_by: str, unit: int, text: str | None = None) -> Any:
    return dcc.Link(text or f"#{unit}", href=f"/features/{explained_by}?unit={unit}") if explained_by else f"#{unit}"


def top_units_table(r: Any, id_: str = "top-units-table") -> html.Table:
    head = html.Tr([html.Th(h) for h in ("kind", "source", "unit", "activation", "attribution", "top contexts")])
    body = [html.Tr([html.Td(x.kind), html.Td(x.source), html.Td(unit_link(x.explained_by, int(x.unit))),
                     html.Td(f"{x.activation:.3f}"), html.Td(f"{x.attribution:+.4f}"), html.Td(x.top_tokens or "")])
            for x in r.units.itertuples()]
    return html.Table([html.Thead(head), html.Tbody(body)], className="plain", id=id_)


@view("top_units")
def top_units_view(r: Any) -> list:
    err = "; ".join(f"SAE {k} error term {v:+.4f}" for k, v in r.sae_error.items())
    return [html.P(f"answer {r.answer!r} (logit {r.answer_logit:.3f}) at position {r.position}; attribution = "
                   f"activation x gradient of that logit. {err}", className="note"), top_units_table(r)]


@view("failure_features")
def failure_features_view(r: Any) -> list:
    c = r.meta.params
    return [html.P(f"{r.n_wrong} wrong vs {r.n_right} right items ({c.get('groups')}); one-sided Fisher exact per "
                   f"feature, {c.get('correction')}-corrected, alpha {c.get('alpha')}", className="note"),
            html.Table([html.Thead(html.Tr([html.Th(h) for h in ("feature", "wrong", "right", "odds ratio", "p",
                                                                  "p adjusted", "top contexts")])),
                        html.Tbody([html.Tr([html.Td(unit_link(r.explained_by, int(t.feature))),
                                             html.Td(f"{t.wrong_fired}/{r.n_wrong}"), html.Td(f"{t.right_fired}/{r.n_right}"),
                                             html.Td(f"{t.odds_ratio:.2f}"), html.Td(f"{t.p:.3g}"),
                                             html.Td(f"{t.p_adjusted:.3g}" + (" *" if t.significant else "")),
                                             html.Td(t.top_tokens)]) for t in r.tests.head(50).itertuples()])],
                       className="plain", id="failure-tests")]


def trace_figures(r: Any, fact: int) -> list:
    """One fact's three causal-trace heatmaps (an empty figure for a kind not traced)."""
    import plotly.graph_objects as go

    f = r.facts.iloc[fact]
    figs = []
    for kind in ("state", "mlp", "attn"):
        if kind in r.kinds:
            title = f"Restoring {F.TRACE_LABELS[kind]}" + (f" (window {r.window})" if kind != "state" else "") + \
                f" · P({f['target']!r}) clean {f['clean_prob']:.3f}, corrupted {f['corrupt_prob']:.3f}"
            figs.append(F.trace_heatmap(r.grid(kind, fact), _tokens(r, fact), int(f["subject_start"]),
                                        int(f["subject_end"]), kind, title))
        else:
            figs.append(go.Figure().update_layout(title=f"{kind}: not traced", height=200))
    return figs


@view("trace")
def trace_view(r: Any) -> list:
    f = r.facts
    head = (f"{len(f)} fact(s) traced" + (f" ({r.qualified} qualified of {r.tried} tried in {r.dataset})" if r.dataset else "")
            + f"; noise {r.noise:.4f} ({r.noise_rule}, embedding sigma {r.sigma:.4f}), {r.samples} noise samples, "
            f"window {r.window}. Mean P(target): clean {f['clean_prob'].mean():.3f}, corrupted "
            f"{f['corrupt_prob'].mean():.3f}. Subject tokens are starred.")
    opts = [{"label": f"{i}: {row.subject} → {row.target!r}", "value": i} for i, row in enumerate(f.itertuples())]
    out: list = [html.P(head, className="note"),
                 html.Div([html.Label("Fact"), dcc.Dropdown(id="trace-fact", options=opts, value=0, clearable=False)],
                          className="controls", style={} if len(f) > 1 else {"display": "none"})]
    out.append(html.Div([html.Div(graph(fig, f"trace-{kind}"), className="third")
                         for kind, fig in zip(("state", "mlp", "attn"), trace_figures(r, 0))], className="row"))
    if len(f) > 1 or r.dataset:
        out.append(html.H4(f"Average indirect effect over {len(f)} facts, by token role"))
        out.append(html.Div([html.Div(graph(F.role_heatmap(r.average(k), r.roles, k,
                                                           f"Average indirect effect: {F.TRACE_LABELS[k]}"),
                                            f"trace-avg-{k}"), className="third") for k in r.kinds], className="row"))
        peaks = [f"{k}: {v:+.4f} at layer {l}, {role} token" for k, (l, role, v) in ((k, r.peak(k)) for k in r.kinds)]
        out.append(html.P("Peak average effects: " + "; ".join(peaks), className="note"))
    return out


def _circuit_k_options(r: Any) -> list[int]:
    n = int(r.graph["n_edges"])
    ks = {k for k in (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500) if k <= n}
    ks |= {int(s["k"]) for s in r.smallest.values() if s and s["k"] <= 500}
    return sorted(ks) or [n]


def circuit_figures(r: Any, method: str, k: int) -> tuple[Any, Any]:
    """(network of the top-K edges of `method` on input -> logits paths, faithfulness curve marked at K)."""
    e = r.circuit_edges(method, k)
    g = r.graph
    fig = F.circuit_graph(e, method, g["n_layers"], g["n_heads"], g["n_kv"],
                          f"Top {k} edges by |{method}| ({len(e)} on input→logits paths)")
    return fig, F.faithfulness_curve(r.faithfulness, r.threshold, k)


@view("circuit")
def circuit_view(r: Any) -> list:
    lines = [f"task {r.task} (n={r.n}), metric {r.metric}: clean {r.clean_metric:.3f}, corrupted {r.corrupt_metric:.3f}; "
             f"{r.graph['n_edges']} edges ({r.graph['n_layers']} layers, {r.graph['n_heads']} heads, "
             f"{r.graph['n_kv']} KV heads: an edge into k/v feeds a whole KV group)."]
    for m in r.methods:
        s = r.smallest.get(m)
        c = r.rank_correlation.get(m)
        lines.append(f"{m}: " + (f"smallest circuit reaching {r.threshold:.0%}: K={s['k']} ({s['edges_on_path']} edges on "
                                 f"paths, faithfulness {s['faithfulness']:.3f}); heads {', '.join(s['heads']) or 'none'}"
                                 if s else f"no K in the sweep reached {r.threshold:.0%}")
                     + (f". Spearman with exact edge patching: {c['uniform']:.3f} on {int(c['n_uniform'])} random edges, "
                        f"{c['all']:.3f} on {int(c['n'])} sampled" if c else ""))
    ks = _circuit_k_options(r)
    first = r.smallest.get(r.methods[0])
    start = min(range(len(ks)), key=lambda i: abs(ks[i] - (first["k"] if first else 50)))
    graph_fig, curve = circuit_figures(r, r.methods[0], ks[start])
    return [html.Ul([html.Li(x) for x in lines], className="note"),
            html.Div([html.Label("Scores"), dcc.RadioItems(id="circuit-method", options=r.methods, value=r.methods[0],
                                                           inline=True),
                      html.Label("Edges kept (K)"),
                      dcc.Slider(id="circuit-k", min=0, max=len(ks) - 1, step=None, value=start,
                                 marks={i: str(k) for i, k in enumerate(ks)}),
                      dcc.Store(id="circuit-ks", data=ks)], className="controls"),
            html.Div([html.Div(graph(graph_fig, "circuit-graph"), className="half"),
                      html.Div(graph(curve, "circuit-faithfulness"), className="half")], className="row")]


__all__ = ["view", "views", "provenance", "highlighted_tokens", "circuit_figures", "trace_figures", "sae_metrics",
           "top_units_table", "unit_link"]
