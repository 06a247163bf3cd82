"""Page layouts and the pure functions behind their callbacks; each page is a route in `ROUTES`."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import dash_ag_grid as dag
from dash import dcc, html

from workbench.analysis.compare import Comparison, model_label
from workbench.dashboard import views as V
from workbench.dashboard.data import DashboardData, filter_rows, filter_samples, leaderboard, sample_detail, sample_rows
from workbench.errors import WorkbenchError

CORRECTIONS = ("holm", "bh", "bonferroni", "none")
GRID_STYLE = {"height": "460px", "width": "100%"}
_DEFAULT_COL = {"sortable": True, "resizable": True, "filter": True}


def error_box(message: str) -> html.Div:
    return html.Div(message, className="error", id="page-error")


def _num(v: Any, digits: int = 3) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return round(float(v), digits) if isinstance(v, float) else v


def _query(search: str | None) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}


# ---- leaderboard ----------------------------------------------------------------------------------
def leaderboard_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    cols, rows = leaderboard(data.runs())
    if not rows:
        return html.Div([html.H2("Leaderboard"), html.P(f"No complete runs in {data.store.root}.", id="lb-empty")])
    opts = {k: sorted({r[k] for r in rows}) for k in ("suite", "model", "backend")}
    col_defs = [{"field": "run_id", "headerName": "run", "pinned": "left", "minWidth": 260},
                {"field": "model"}, {"field": "backend", "maxWidth": 110}, {"field": "suite", "maxWidth": 100},
                {"field": "n_samples", "headerName": "samples", "maxWidth": 110}]
    col_defs += [{"field": c.field, "headerName": f"[{c.scope}]" if c.kind == "group" else c.scope,
                  "headerTooltip": f"{c.kind} {c.scope}: primary metric, mean [95% CI]", "minWidth": 170}
                 for c in cols]
    col_defs.append({"field": "created", "minWidth": 200})
    return html.Div(id="page-leaderboard", children=[
        html.H2("Leaderboard"),
        html.P("Each cell: the scope's primary metric, mean [95% CI]. Tick runs to compare them (the first ticked "
               "is the baseline) or open their samples.", className="note"),
        html.Div([dcc.Dropdown(id=f"lb-{k}", options=opts[k], multi=True, placeholder=f"filter by {k}")
                  for k in ("suite", "model", "backend")], className="controls three"),
        dag.AgGrid(id="lb-grid", rowData=rows, columnDefs=col_defs, defaultColDef=_DEFAULT_COL,
                   getRowId="params.data.run_id", style={"height": "420px", "width": "100%"},
                   dashGridOptions={"rowSelection": {"mode": "multiRow"}, "tooltipShowDelay": 200}),
        html.Div(id="lb-actions", className="actions"),
    ])


def leaderboard_filtered(data: DashboardData, suites: Sequence[str] | None, models: Sequence[str] | None,
                         backends: Sequence[str] | None) -> list[dict[str, Any]]:
    return filter_rows(leaderboard(data.runs())[1], suite=suites, model=models, backend=backends)


def leaderboard_actions(selected: Sequence[dict[str, Any]] | None) -> list:
    """Links for the ticked runs: compare them (first = baseline) and explore each one's samples."""
    ids = [r["run_id"] for r in selected or []]
    if not ids:
        return [html.Span("Tick runs to compare them or to explore their samples.", className="note")]
    out: list = []
    if len(ids) >= 2:
        out.append(dcc.Link(f"Compare {len(ids)} runs (baseline {ids[0]})", id="lb-compare-link",
                            href="/compare?runs=" + ",".join(quote(i) for i in ids), className="button"))
    for i in ids:
        base = f"?baseline={quote(ids[0])}" if len(ids) >= 2 and i != ids[0] else ""
        out.append(dcc.Link(f"Samples of {i}", href=f"/samples/{quote(i)}{base}", className="button secondary"))
    return out


# ---- comparison -----------------------------------------------------------------------------------
def paired_rows(c: Comparison) -> list[dict[str, Any]]:
    return [{"candidate": p.candidate, "scope": f"[{p.scope.name}]" if p.scope.kind == "group" else p.scope.name,
             "metric": p.metric, "n": p.stats.n, "baseline_mean": _num(p.stats.mean_a),
             "candidate_mean": _num(p.stats.mean_b), "delta": _num(p.stats.delta, 4),
             "ci95": f"[{p.stats.ci95_low:+.3f}, {p.stats.ci95_high:+.3f}]", "p": _num(p.stats.p_value, 5),
             "p_adjusted": _num(p.p_adjusted, 5), "test": getattr(p.stats, "test", None),
             "significant": "yes" if p.p_adjusted == p.p_adjusted and p.p_adjusted < 0.05 else ""}
            for p in c.paired if p.primary]


def compare_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    import dataclasses

    from workbench.analysis.report import _forest_figure  # the report's forest plot, reused as is

    ids = [unquote(i) for i in query.get("runs", "").split(",") if i]
    correction = query.get("correction", "holm")
    subjects = query.get("subjects") == "1"
    if correction not in CORRECTIONS:
        return error_box(f"unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
    c = data.comparison(tuple(ids), correction)
    base = c.baseline.run_id
    runs = html.Ul([html.Li([html.B("baseline " if r.run_id == base else "candidate "), html.Code(r.run_id), " · ",
                             model_label(r)]) for r in c.runs])
    here = f"/compare?runs={','.join(quote(i) for i in ids)}"
    corr_links = [dcc.Link(k, href=f"{here}&correction={k}" + ("&subjects=1" if subjects else ""),
                           className="chip" + (" active" if k == correction else "")) for k in CORRECTIONS]
    # Subjects of a group (57 for MMLU) would swamp the plot: headline rows unless asked.
    shown = c if subjects else dataclasses.replace(c, paired=[p for p in c.paired
                                                              if p.scope.kind == "group" or p.scope.group is None])
    forest_toggle = dcc.Link("hide subjects" if subjects else "show each group's subjects", id="cmp-subjects",
                             href=f"{here}&correction={correction}" + ("" if subjects else "&subjects=1"), className="chip")
    flips = c.flips.drop(columns=["prompt"]).to_dict("records") if not c.flips.empty else []
    flip_cols = [{"field": f} for f in ("candidate", "task", "doc_id", "direction", "target", "answer_baseline",
                                         "answer_candidate")]
    paired_cols = [{"field": f, **({"pinned": "left"} if f == "scope" else {})} for f in
                   ("scope", "candidate", "metric", "n", "baseline_mean", "candidate_mean", "delta", "ci95", "p",
                    "p_adjusted", "significant")]
    diff = html.Table([html.Thead(html.Tr([html.Th("field")] + [html.Th(r.run_id) for r in c.runs])),
                       html.Tbody([html.Tr([html.Td(k)] + [html.Td(str(v)) for v in vals])
                                   for k, vals in c.manifest_diff])], className="plain") if c.manifest_diff else \
        html.P("The manifests agree on every recorded field.")
    sample_links = [dcc.Link(f"Flipped samples of {r.run_id}", href=f"/samples/{quote(r.run_id)}?baseline={quote(base)}"
                             "&flip=changed", className="button secondary") for r in c.runs[1:]]
    return html.Div(id="page-compare", children=[
        html.H2("Run comparison"), runs,
        html.P(["Items matched by (task, doc_id, prompt_hash): ", html.B(str(len(c.items[base]))),
                " per run. Δ = candidate − baseline; McNemar exact or paired permutation p-values, corrected per "
                "candidate across the headline rows and, separately, each group's subjects. Correction: ",
                *corr_links], className="note"),
        html.H3("Paired deltas (primary metric)"),
        dag.AgGrid(id="cmp-grid", rowData=paired_rows(c), columnDefs=paired_cols, defaultColDef=_DEFAULT_COL,
                   columnSize="responsiveSizeToFit", style={"height": "360px", "width": "100%"}),
        html.H3(["Forest plot ", forest_toggle]), V.graph(_forest_figure(shown, 0.05), "cmp-forest"),
        html.H3(f"Flipped items ({len(flips)})"), html.Div(sample_links, className="actions"),
        dag.AgGrid(id="cmp-flips", rowData=flips, columnDefs=flip_cols, defaultColDef=_DEFAULT_COL,
                   columnSize="responsiveSizeToFit", style={"height": "320px", "width": "100%"}),
        *calibration_section(c),
        html.H3("Manifest diff"), diff,
    ])


def calibration_section(c: Comparison) -> list:
    """Reliability diagrams and ECE / Brier / selective accuracy per run on the multiple-choice scopes
    (ECE and Brier: lower is better); empty when no compared task has calibration columns."""
    from workbench.analysis.calibration import METRICS, calibration_rows
    from workbench.analysis.report import reliability_figure
    from workbench.store.samples import direction

    rows = calibration_rows(c, n_boot=1000)
    if not rows:
        return []
    label = {m: f"{m} (lower is better)" if direction(m) == "lower" else m for m in METRICS}
    grid = [{"run": r.run_id, "scope": f"[{r.scope.name}]" if r.scope.kind == "group" else r.scope.name,
             **{label[m]: _num(e.value) for m, e in r.estimates.items()},
             **{f"{label[m]} 95% CI": f"[{_num(e.ci95_low)}, {_num(e.ci95_high)}]" for m, e in r.estimates.items()
                if m in ("ece", "brier")}} for r in rows]
    cols = [{"field": "scope", "pinned": "left"}, {"field": "run"}] + [
        {"field": k} for k in dict.fromkeys(k for g in grid for k in g if k not in ("run", "scope"))]
    return [html.H3("Calibration"),
            html.P("Multiple-choice items: confidence is the softmax probability of the chosen answer; ECE over 10 "
                   "equal-mass bins (HELM); the diagonal is perfect calibration. Paired ECE/Brier differences are in "
                   "the compare report's paired table.", className="note"),
            dag.AgGrid(id="cmp-calibration", rowData=grid, columnDefs=cols, defaultColDef=_DEFAULT_COL,
                       columnSize="responsiveSizeToFit", style={"height": "260px", "width": "100%"}),
            V.graph(reliability_figure(c, rows), "cmp-reliability")]


# ---- sample explorer ------------------------------------------------------------------------------
SAMPLE_COLS = [{"field": "task", "minWidth": 200}, {"field": "doc_id", "maxWidth": 100},
               {"field": "correct", "maxWidth": 100}, {"field": "score", "maxWidth": 100},
               {"field": "flip", "maxWidth": 130}, {"field": "answer", "minWidth": 200},
               {"field": "target", "minWidth": 200}, {"field": "artifacts", "maxWidth": 110}]


def samples_grid_rows(data: DashboardData, run_id: str, baseline: str | None, tasks: Sequence[str] | None,
                      correct: str | None, flip: str | None) -> tuple[list[dict[str, Any]], str]:
    """(filtered grid rows, status line) for the explorer."""
    df = data.samples(run_id)
    flips, note = None, ""
    if baseline:
        try:
            flips = data.flips(run_id, baseline)
        except WorkbenchError as exc:
            note = f" Flip status unavailable: {exc}"
    rows = sample_rows(df, flips=flips, linked=data.linked_artifacts(run_id))
    shown = filter_samples(rows, tasks=tasks, correct=correct, flip=flip)
    return shown, f"{len(shown)} of {len(rows)} samples." + note


def samples_page(data: DashboardData, query: dict[str, str], run_id: str) -> html.Div:
    run = data.run(run_id)
    baseline = query.get("baseline") or None
    if baseline:
        data.run(baseline)  # validates the id and fails early on a missing run
    df = data.samples(run_id)
    tasks = list(dict.fromkeys(df["task"]))
    sel_tasks = [t for t in query.get("task", "").split(",") if t in tasks]
    rows, status = samples_grid_rows(data, run_id, baseline, sel_tasks, query.get("correct"), query.get("flip"))
    others = [r.run_id for r in data.runs() if r.run_id != run_id]
    key = query.get("sample")
    return html.Div(id="page-samples", children=[
        html.H2(["Samples of ", html.Code(run_id)]), html.P(model_label(run), className="note"),
        dcc.Store(id="se-run", data=run_id),
        html.Div([
            dcc.Dropdown(id="se-task", options=tasks, value=sel_tasks, multi=True, placeholder="task"),
            dcc.Dropdown(id="se-correct", options=[{"label": "all", "value": "all"}, {"label": "correct", "value": "yes"},
                                                   {"label": "wrong", "value": "no"},
                                                   {"label": "partial", "value": "partial"}],
                         value=query.get("correct", "all"), clearable=False),
            dcc.Dropdown(id="se-baseline", options=others, value=baseline, placeholder="baseline run for flips"),
            dcc.Dropdown(id="se-flip", options=["all", "changed", "right→wrong", "wrong→right", "same"],
                         value=query.get("flip", "all"), clearable=False),
        ], className="controls four"),
        html.Div(status, id="se-status", className="note"),
        dag.AgGrid(id="se-grid", rowData=rows, columnDefs=SAMPLE_COLS, defaultColDef=_DEFAULT_COL,
                   getRowId="params.data.key", style=GRID_STYLE,
                   dashGridOptions={"rowSelection": {"mode": "singleRow", "checkboxes": False,
                                                     "enableClickSelection": True}}),
        html.Div(detail_panel(data, run_id, key) if key else
                 html.P("Click a row to see the sample.", className="note"), id="se-detail", className="detail"),
    ])


def detail_panel(data: DashboardData, run_id: str, key: str) -> html.Div:
    """Prompt, target, answer, choices with log-likelihoods or the generation, scores and linked artifacts."""
    d = sample_detail(data.samples(run_id), key)
    if d is None:
        return error_box(f"run {run_id} has no sample {key!r}")
    parts: list = [html.H3([d["task"], " #", d["doc_id"]], id="detail-title"),
                   html.H4("Prompt"), html.Pre(d["prompt"], className="prompt", id="detail-prompt"),
                   html.Div([html.B("target: "), html.Code(repr(d["target"]))]),
                   html.Div([html.B("answer: "), html.Code(repr(d["answer"]), id="detail-answer")])]
    if d["generation"] is not None:
        parts += [html.H4("Generated text"), html.Pre(d["generation"], className="prompt", id="detail-generation")]
    if d["choices"]:
        parts += [html.H4("Choices"), html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in ("choice", "log-likelihood", "greedy", "picked", "gold")]))] +
            [html.Tbody([html.Tr([html.Td(html.Code(repr(c["choice"]))),
                                  html.Td("–" if c["loglikelihood"] is None else f"{c['loglikelihood']:.4f}"),
                                  html.Td("yes" if c["is_greedy"] else ""), html.Td("◀" if c["predicted"] else ""),
                                  html.Td("✓" if c["choice"] == d["target"] else "")],
                                 className="picked" if c["predicted"] else "") for c in d["choices"]])],
            className="plain", id="detail-choices")]
    parts += [html.H4("Scores"), html.Ul([html.Li(f"{m}: {v}") for m, v in d["scores"].items()], id="detail-scores")]
    parts.append(html.Div(artifact_links(data, run_id, key), id="detail-artifacts-box"))
    if data.jobs is not None:
        parts.append(job_box(data, run_id, key))
    return html.Div(parts)


def artifact_links(data: DashboardData, run_id: str, key: str) -> list:
    """Links to the artifacts whose manifest names this sample as its source."""
    linked = data.linked_artifacts(run_id).get(key, [])
    task, _, doc = key.rpartition("#")
    return [html.H4(f"Interpretability artifacts ({len(linked)})"),
            html.Ul([html.Li(dcc.Link(f"{m['kind']} · {m['id']}", href=f"/artifacts/{quote(m['id'])}"))
                     for m in linked], id="detail-artifacts") if linked else
            html.P(["None yet: create one below, or ", html.Code(f"workbench interp attention --model SPEC --run {run_id} "
                                                                  f"--sample {doc} --task {task}")], className="note")]


def job_box(data: DashboardData, run_id: str, key: str) -> html.Div:
    """Run a tool on this sample with the run's own model, in the background; the panel polls it."""
    from workbench.interp.tools import sample_tools

    spec = str(data.run(run_id).manifest.get("model", {}).get("spec", ""))
    return html.Div([
        html.Span(["Create with ", html.Code(spec), ": "]),
        dcc.Dropdown(id="job-tool", options=sample_tools(), value=sample_tools()[0], clearable=False,
                     style={"width": "180px"}),
        html.Button("Create artifact", id="job-create", n_clicks=0, className="button"),
        html.Span(id="job-status", className="note"),
        dcc.Store(id="job-id"), dcc.Store(id="job-sample", data={"run_id": run_id, "key": key}),
        dcc.Interval(id="job-poll", interval=1000, disabled=True),
    ], className="jobs", id="job-box")


def job_status(job) -> Any:
    """A job's state for the panel: its phase, the new artifact's link, or the error."""
    if job is None:
        return html.Span("unknown job (the server restarted?)", className="error-inline")
    if job.status == "done":
        return ["done: ", dcc.Link(f"{job.tool} · {job.artifact_id}", href=f"/artifacts/{quote(job.artifact_id)}",
                                   id="job-artifact-link")]
    if job.status == "failed":
        return html.Span(f"{job.tool} failed: {job.error}", className="error-inline", id="job-error")
    return f"{job.tool}: {job.phase}…"


# ---- artifacts ------------------------------------------------------------------------------------
def artifacts_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    ms = data.artifact_index()
    if not ms:
        return html.Div([html.H2("Interpretability artifacts"), html.P(f"No artifacts in {data.artifacts_root}.")])
    head = html.Tr([html.Th(h) for h in ("artifact", "kind", "model", "source", "created")])
    body = []
    for m in reversed(ms):
        src = m.get("source") or {}
        link = (dcc.Link(f"{src['run_id']} / {src.get('task')} #{src.get('doc_id')}",
                         href=f"/samples/{quote(src['run_id'])}?sample={quote(str(src.get('task')) + '#' + str(src.get('doc_id')))}")
                if src.get("run_id") else "–")
        body.append(html.Tr([html.Td(dcc.Link(m["id"], href=f"/artifacts/{quote(m['id'])}")), html.Td(m.get("kind")),
                             html.Td(str((m.get("model") or {}).get("spec"))), html.Td(link), html.Td(m.get("created"))]))
    return html.Div(id="page-artifacts", children=[html.H2("Interpretability artifacts"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="plain", id="artifact-table")])


def artifact_page(data: DashboardData, query: dict[str, str], artifact_id: str) -> html.Div:
    r = data.artifact(artifact_id)
    builder = V.views().get(r.meta.kind)
    body = builder(r) if builder else [html.P(f"No view for artifact kind {r.meta.kind!r}.")]
    return html.Div(id=f"page-artifact-{r.meta.kind}", children=[
                     html.H2([r.meta.kind.replace("_", " "), " · ", html.Code(artifact_id)]),
                     dcc.Store(id="artifact-id", data=artifact_id), V.provenance(r), *body])


# ---- routing --------------------------------------------------------------------------------------
# first path segment -> (builder(data, query, *ids), how many id segments follow it)
ROUTES: dict[str, tuple[Callable[..., html.Div], int]] = {
    "": (leaderboard_page, 0),
    "compare": (compare_page, 0),
    "samples": (samples_page, 1),
    "artifacts": (artifacts_page, 0),
    "artifact": (artifact_page, 1),
}


def page_for(data: DashboardData, pathname: str | None, search: str | None) -> html.Div:
    """The page for a URL; bad ids and missing runs give a one-line error box, not a traceback."""
    parts = [unquote(p) for p in (pathname or "/").strip("/").split("/") if p]
    route = parts[0] if parts else ""
    if route == "artifacts" and len(parts) == 2:
        route = "artifact"
    builder, n_ids = ROUTES.get(route, (None, 0))
    if builder is None or len(parts[1:]) != n_ids:
        return error_box(f"no page {pathname!r}")
    try:
        return builder(data, _query(search), *parts[1:])
    except WorkbenchError as exc:
        return error_box(str(exc))
