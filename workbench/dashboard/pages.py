"""Page layouts and the pure functions behind their callbacks; each page is a route in `ROUTES`."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import dash_ag_grid as dag
from dash import dcc, html

from workbench.analysis.compare import Comparison
from workbench.analysis.figures import forest, paired_rows
from workbench.analysis.stats import CORRECTIONS
from workbench.analysis.text import (
    ARROWS,
    DIRECTION_WORDS,
    as_text,
    clip,
    clip_lines,
    metric_label,
    one_line,
    run_label,
    run_labels,
)
from workbench.dashboard import figures as F
from workbench.dashboard import views as V
from workbench.dashboard.data import (
    DashboardData,
    filter_rows,
    filter_samples,
    leaderboard,
    run_info,
    sample_detail,
    sample_rows,
)
from workbench.errors import ModelError, WorkbenchError
from workbench.interp.units import search_units

_DEFAULT_COL = {"sortable": True, "resizable": True, "filter": True, "wrapHeaderText": True, "autoHeaderHeight": True}
_AUTO_HEIGHT = 12           # grids with at most this many rows take their rows' height (no empty box below)
_MAX_PLOTTED = 8            # runs in the leaderboard plot when none are ticked (the first in the grid)
_MAX_PROBLEMS = 20          # unreadable entries listed by name
_TEXT_CHARS, _TEXT_LINES = 5000, 200  # long model text is clipped to this, with a "show all" toggle


def error_box(message: str) -> html.Div:
    return html.Div(message, className="error", id="page-error")


def problems_note(bad: Sequence[tuple[Path, str]], what: str, id_: str) -> html.Div | None:
    """The visible 'could not read' note: each skipped store entry with the reason."""
    if not bad:
        return None
    items = [html.Li([html.Code(as_text(path)), ": ", as_text(why)]) for path, why in bad[:_MAX_PROBLEMS]]
    if len(bad) > _MAX_PROBLEMS:
        items.append(html.Li(f"… and {len(bad) - _MAX_PROBLEMS} more (`workbench {what}s list` shows them all)"))
    return html.Div([html.B(f"Could not read {len(bad)} {what}{'s' if len(bad) > 1 else ''} (skipped):"),
                     html.Ul(items)], className="warn", id=id_)


def _num(v: Any, digits: int = 3) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return round(float(v), digits) if isinstance(v, float) else v


def _query(search: str | None) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}


def _text_width(texts: Sequence[str], lo: int, hi: int, px: float = 7.4, pad: int = 48) -> int:
    """A first guess (px) at a column width that shows the longest of `texts`, within [lo, hi]; the browser
    then fits the text columns exactly (`_autosize`)."""
    return int(min(hi, max(lo, pad + px * max((len(t) for t in texts), default=0))))


def _grid_options(n_rows: int, **options: Any) -> dict[str, Any]:
    return {**options, **({"domLayout": "autoHeight"} if n_rows <= _AUTO_HEIGHT else {})}


def _grid_style(n_rows: int, height: str) -> dict[str, str]:
    return {"width": "100%"} if n_rows <= _AUTO_HEIGHT else {"height": height, "width": "100%"}


def _autosize(*keys: str) -> dict[str, Any]:
    """Grid arguments that fit these columns to their longest value, as the browser measures it."""
    return {"columnSize": "autoSize", "columnSizeOptions": {"keys": list(keys), "skipHeader": True}}


def _fn(expr: str) -> dict[str, str]:
    """An AG Grid callback written in JS (the helpers live in assets/dashAgGridFunctions.js)."""
    return {"function": expr}


def _number_col(field: str, header: str, fmt: str = "wbNum(params.value, 3)", **extra: Any) -> dict[str, Any]:
    return {"field": field, "headerName": header, "type": "numericColumn", "filter": "agNumberColumnFilter",
            "valueFormatter": _fn(fmt), **extra}


def long_text(text: Any, id_: str) -> html.Div:
    """Model text as a wrapped <pre>; past a few thousand characters or dozens of lines, the head with a
    'show all' toggle (the full text stays out of the layout's flow until asked for)."""
    s = as_text(text)
    head, cut = clip_lines(s, _TEXT_CHARS, _TEXT_LINES)
    if not cut:
        return html.Div(html.Pre(s, className="prompt", id=id_))
    return html.Div(className="clipped", children=[html.Pre(head + " …", className="prompt head", id=id_),
                     html.Details([html.Summary(f"show all ({len(s):,} characters, {s.count(chr(10)) + 1:,} lines)",
                                                id=f"{id_}-more"),
                                   html.Pre(s, className="prompt full", id=f"{id_}-full")])])


# ---- leaderboard ----------------------------------------------------------------------------------
def _scope_header(c) -> str:
    name = f"[{c.scope}]" if c.kind == "group" else c.scope
    return f"{name} · {metric_label(c.metric, c.direction)}" if c.metric else name


def leaderboard_columns(cols, rows: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = [
        {"field": "label", "headerName": "run (model · backend · date)", "pinned": "left",
         "width": _text_width([r["label"] for r in rows], 240, 560), "tooltipField": "run_id",
         "headerTooltip": "hover a run for its full id"},
        {"field": "suite", "maxWidth": 100},
        _number_col("n_samples", "samples", "wbNum(params.value, 0)", maxWidth=110)]
    for c in cols:
        what = f"{c.metric} ({DIRECTION_WORDS[c.direction]})" if c.metric else "primary metric (differs between runs)"
        defs.append(_number_col(c.field, _scope_header(c), "wbScoreCI(params)",
                                minWidth=_text_width([_scope_header(c)], 190, 260, pad=70),
                                headerTooltip=f"{c.kind} {c.scope}: {what}; mean [95% CI]",
                                tooltipValueGetter=_fn("wbScoreTip(params)"),
                                cellClassRules={"lb-best": f"params.data && params.data['{c.field}_best'] === true"}))
    return defs


def _plotted(rows: Sequence[dict[str, Any]], selected: Sequence[str] | None) -> tuple[list[dict[str, Any]], str]:
    if selected:
        chosen = [r for r in rows if r["run_id"] in set(selected)]
        return chosen, f"the {len(chosen)} ticked run{'s' if len(chosen) != 1 else ''}"
    if len(rows) > _MAX_PLOTTED:
        return list(rows[:_MAX_PLOTTED]), (f"the first {_MAX_PLOTTED} of {len(rows)} runs in the grid "
                                           "(sort, filter or tick runs to choose)")
    return list(rows), f"all {len(rows)} runs"


def leaderboard_plot(columns: Sequence[Sequence[str]], rows: Sequence[dict[str, Any]] | None,
                     selected: Sequence[dict[str, Any]] | None) -> Any:
    """The headline-score plot of the runs in the grid (as sorted and filtered there), or of the ticked ones.

    It is built once the grid is on screen (from the grid's rows), so the leaderboard's first paint does not
    wait for plotly.js."""
    shown, caption = _plotted(rows or [], [r["run_id"] for r in selected or []])
    if not shown:
        return html.P("No runs to plot.", className="note")
    fig = F.score_plot([(f, label) for f, label in columns], shown, title=f"Headline scores with 95% CIs: {caption}")
    return V.graph(fig, "lb-plot")


def leaderboard_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    runs, bad = data.scan()
    note = problems_note(bad, "run", "lb-unreadable")
    if not runs:
        return html.Div(id="page-leaderboard", children=[
            html.H2("Leaderboard"), note, html.P(f"No complete runs in {data.store.root}.", id="lb-empty")])
    cols, rows = leaderboard(runs)
    rows.reverse()  # newest first
    opts = {k: sorted({r[k] for r in rows}) for k in ("suite", "model", "backend")}
    legend = ", ".join(f"{a} {DIRECTION_WORDS[d]}" for d, a in ARROWS.items())
    return html.Div(id="page-leaderboard", children=[
        html.H2("Leaderboard"), note,
        html.P(f"Each cell: the scope's primary metric, mean [95% CI] ({legend}); bold = the best run of the column. "
               "Tick runs to compare them (the first ticked is the baseline) or open their samples.", className="note"),
        html.Div([html.Div([html.Label(f"Filter by {k}", htmlFor=f"lb-{k}"),
                            dcc.Dropdown(id=f"lb-{k}", options=opts[k], multi=True, placeholder=f"any {k}")])
                  for k in ("suite", "model", "backend")], className="controls three"),
        dag.AgGrid(id="lb-grid", rowData=rows, columnDefs=leaderboard_columns(cols, rows), defaultColDef=_DEFAULT_COL,
                   getRowId="params.data.run_id", style=_grid_style(len(rows), "420px"), **_autosize("label"),
                   dashGridOptions=_grid_options(len(rows), rowSelection={"mode": "multiRow"},
                                                 selectionColumnDef={"pinned": "left"}, tooltipShowDelay=200)),
        html.Div(id="lb-actions", className="actions"),
        dcc.Store(id="lb-columns", data=[[c.field, _scope_header(c)] for c in cols]),
        html.Div(html.P("Plot of the headline scores: loading…", className="note"), id="lb-plot-box"),
    ])


def leaderboard_filtered(data: DashboardData, suites: Sequence[str] | None, models: Sequence[str] | None,
                         backends: Sequence[str] | None) -> list[dict[str, Any]]:
    """Grid rows (newest first) of the runs that pass the filters, best-of-column marks among them."""
    runs = data.runs()
    labels = run_labels(runs)
    keep = {r["run_id"] for r in filter_rows([run_info(r) for r in runs], suite=suites, model=models, backend=backends)}
    cols, _ = leaderboard(runs, labels=labels)
    return leaderboard([r for r in runs if r.run_id in keep], [(c.kind, c.scope) for c in cols], labels)[1][::-1]


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
def paired_columns(correction: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Readable headers, whole values; the candidate column only when there are several candidates. (A handful
    of rows: the grid sorts but has no filter buttons, so the number headers fit.)"""
    delta_rules = {"delta-better": "params.data && params.data.better === true",
                   "delta-worse": "params.data && params.data.better === false"}
    several = len({r["candidate"] for r in rows}) > 1
    cols = [
        {"field": "scope", "pinned": "left", "width": _text_width([r["scope"] for r in rows], 130, 320)},
        {"field": "candidate_label", "headerName": "candidate", "tooltipField": "candidate", "hide": not several,
         "width": _text_width([r["candidate_label"] for r in rows], 160, 430)},
        {"field": "metric", "width": _text_width([r["metric"] for r in rows], 110, 220),
         "headerTooltip": "↑ higher is better, ↓ lower is better, →0 closer to 0"},
        _number_col("n", "items", "wbNum(params.value, 0)", width=80),
        _number_col("baseline_mean", "baseline mean", width=105),
        _number_col("candidate_mean", "candidate mean", width=110),
        _number_col("delta", "Δ (candidate − baseline)", "wbSigned(params.value, 3)", width=125,
                    cellClassRules=delta_rules, headerTooltip="green: better by the metric's direction; red: worse"),
        _number_col("ci95_low", "95% CI of Δ", "wbCI(params)", width=150,
                    headerTooltip="paired bootstrap 95% confidence interval of Δ"),
        _number_col("p", "p", "wbP(params.value)", width=75),
        _number_col("p_adjusted", f"p ({correction})", "wbP(params.value)", width=95,
                    cellClassRules={"significant": "params.data && params.data.significant === 'yes'"},
                    headerTooltip=f"{correction}-corrected p-value; bold: significant (< 0.05)"),
    ]
    return [{**c, "filter": False} for c in cols]


def flip_rows(c: Comparison) -> list[dict[str, Any]]:
    """Flipped items as grid rows, each with a link to the item in the sample explorer."""
    if c.flips.empty:
        return []
    labels = run_labels(c.runs)
    out = []
    for f in c.flips.drop(columns=["prompt"]).to_dict("records"):
        key = f"{f['task']}#{f['doc_id']}"
        out.append({"open": f"/samples/{quote(f['candidate'])}?baseline={quote(f['baseline'])}&task={quote(f['task'])}"
                            f"&sample={quote(key)}",
                    "candidate": f["candidate"], "candidate_label": labels.get(f["candidate"], f["candidate"]),
                    "task": as_text(f["task"]), "doc_id": f["doc_id"], "metric": as_text(f["metric"]),
                    "direction": f["direction"], "target": one_line(f["target"]),
                    "answer_baseline": one_line(f["answer_baseline"]), "answer_candidate": one_line(f["answer_candidate"]),
                    "answer_baseline_full": clip(f["answer_baseline"], 600),
                    "answer_candidate_full": clip(f["answer_candidate"], 600)})
    return out


FLIP_RULES = {"flip-worse": "params.value === 'right→wrong'", "flip-better": "params.value === 'wrong→right'"}


def flip_columns(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    several = len({r["candidate"] for r in rows}) > 1
    return [
        {"field": "open", "headerName": "", "cellRenderer": "WbLink", "cellRendererParams": {"text": "explore"},
         "width": 90, "sortable": False, "filter": False, "pinned": "left"},
        {"field": "candidate_label", "headerName": "candidate", "tooltipField": "candidate", "hide": not several,
         "width": _text_width([r["candidate_label"] for r in rows], 160, 420)},
        {"field": "task", "width": _text_width([r["task"] for r in rows], 110, 260)},
        _number_col("doc_id", "doc", "wbNum(params.value, 0)", width=80),
        {"field": "direction", "width": 130, "cellClassRules": FLIP_RULES},
        {"field": "target", "minWidth": 120, "flex": 1, "tooltipField": "target"},
        {"field": "answer_baseline", "headerName": "baseline answer", "minWidth": 200, "flex": 2,
         "tooltipField": "answer_baseline_full"},
        {"field": "answer_candidate", "headerName": "candidate answer", "minWidth": 200, "flex": 2,
         "tooltipField": "answer_candidate_full"},
    ]


def compare_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    ids = [unquote(i) for i in query.get("runs", "").split(",") if i]
    correction = query.get("correction", "holm")
    subjects = query.get("subjects") == "1"
    if correction not in CORRECTIONS:
        return error_box(f"unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
    c = data.comparison(tuple(ids), correction)
    base = c.baseline.run_id
    runs = html.Ul([html.Li([html.B("baseline " if r.run_id == base else "candidate "), as_text(run_label(r)), " · ",
                             html.Code(r.run_id)]) for r in c.runs])
    here = f"/compare?runs={','.join(quote(i) for i in ids)}"
    corr_links = [dcc.Link(k, href=f"{here}&correction={k}" + ("&subjects=1" if subjects else ""),
                           className="chip" + (" active" if k == correction else "")) for k in CORRECTIONS]
    rows = paired_rows(c)
    # Subjects of a group (57 for MMLU) would swamp the plot: headline rows unless asked.
    plotted = rows if subjects else [r for r in rows if not r["subject"]]
    forest_toggle = dcc.Link("hide subjects" if subjects else "show each group's subjects", id="cmp-subjects",
                             href=f"{here}&correction={correction}" + ("" if subjects else "&subjects=1"), className="chip")
    flips = flip_rows(c)
    diff = html.Table([html.Thead(html.Tr([html.Th("field")] + [html.Th(r.run_id) for r in c.runs])),
                       html.Tbody([html.Tr([html.Td(k)] + [html.Td(clip(v, 300)) for v in vals])
                                   for k, vals in c.manifest_diff])], className="plain") if c.manifest_diff else \
        html.P("The manifests agree on every recorded field.")
    sample_links = [dcc.Link(f"Flipped samples of {r.run_id}", href=f"/samples/{quote(r.run_id)}?baseline={quote(base)}"
                             "&flip=changed", className="button secondary") for r in c.runs[1:]]
    return html.Div(id="page-compare", children=[
        html.H2("Run comparison"), runs,
        html.P(["Items matched by (task, doc_id, prompt_hash): ", html.B(str(len(c.items[base]))),
                " per run. Δ = candidate − baseline; green = better and red = worse by the metric's direction "
                "(↑ higher, ↓ lower, →0 closer to 0 is better). McNemar exact or paired permutation p-values, corrected "
                "per candidate across the headline rows and, separately, each group's subjects. Correction: ",
                *corr_links], className="note"),
        html.H3("Paired deltas (primary metric)"),
        dag.AgGrid(id="cmp-grid", rowData=rows, columnDefs=paired_columns(correction, rows),
                   defaultColDef=_DEFAULT_COL,
                   style=_grid_style(len(rows), "360px"), dashGridOptions=_grid_options(len(rows), tooltipShowDelay=200),
                   **_autosize("scope", "candidate_label", "metric")),
        html.H3(["Forest plot ", forest_toggle]), V.graph(forest(plotted), "cmp-forest"),
        html.H3(f"Flipped items ({len(flips)})"), html.Div(sample_links, className="actions"),
        dag.AgGrid(id="cmp-flips", rowData=flips, columnDefs=flip_columns(flips), defaultColDef=_DEFAULT_COL,
                   style=_grid_style(len(flips), "320px"), dashGridOptions=_grid_options(len(flips), tooltipShowDelay=200),
                   **_autosize("candidate_label", "task")),
        *calibration_section(c),
        html.H3("Manifest diff"), diff,
    ])


def calibration_section(c: Comparison) -> list:
    """Reliability diagrams and accuracy / confidence / ECE / Brier / selective accuracy per run on the
    multiple-choice scopes (↓: lower is better); empty when no compared task has calibration columns."""
    from workbench.analysis.calibration import calibration_rows
    from workbench.analysis.figures import reliability
    from workbench.store.samples import direction

    rows = calibration_rows(c, n_boot=1000)
    if not rows:
        return []
    labels = run_labels(c.runs)
    grid = [{"run": r.run_id, "run_label": labels[r.run_id],
             "scope": f"[{r.scope.name}]" if r.scope.kind == "group" else r.scope.name,
             **{metric_label(m, direction(m)): _num(e.value) for m, e in r.estimates.items()},
             **{f"{metric_label(m, direction(m))} 95% CI": f"[{_num(e.ci95_low)}, {_num(e.ci95_high)}]"
                for m, e in r.estimates.items() if m in ("ece", "brier")}} for r in rows]
    cols = [{"field": "scope", "pinned": "left"}, {"field": "run_label", "headerName": "run"}] + [
        {"field": k} for k in dict.fromkeys(k for g in grid for k in g if k not in ("run", "run_label", "scope"))]
    return [html.H3("Calibration"),
            html.P("Multiple-choice items: confidence is the softmax probability of the chosen answer; ECE over 10 "
                   "equal-mass bins (HELM); the diagonal is perfect calibration. Paired ECE/Brier differences are in "
                   "the compare report's paired table.", className="note"),
            dag.AgGrid(id="cmp-calibration", rowData=grid, columnDefs=cols, defaultColDef=_DEFAULT_COL,
                       style=_grid_style(len(grid), "260px"), dashGridOptions=_grid_options(len(grid)),
                       **_autosize("scope", "run_label")),
            V.graph(reliability(c, rows), "cmp-reliability")]


# ---- sample explorer ------------------------------------------------------------------------------
def sample_columns(with_baseline: bool) -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [
        {"field": "task", "width": 170}, _number_col("doc_id", "doc", "wbNum(params.value, 0)", width=80),
        {"field": "metric", "width": 140, "headerTooltip": "the task's primary metric; ↑ higher, ↓ lower, →0 closer "
                                                            "to 0 is better"},
        _number_col("score", "score", width=95),
        {"field": "correct", "width": 110, "headerTooltip": "only for metrics that say right or wrong per item"},
        {"field": "flip", "width": 120, "cellClassRules": FLIP_RULES},
        {"field": "answer", "minWidth": 180, "flex": 2}]
    if with_baseline:
        cols.append({"field": "baseline_answer", "headerName": "baseline answer", "minWidth": 180, "flex": 2})
    cols += [{"field": "target", "minWidth": 110, "flex": 1},
             _number_col("artifacts", "artifacts", "wbNum(params.value, 0)", width=120)]
    return cols


def samples_grid_rows(data: DashboardData, run_id: str, baseline: str | None, tasks: Sequence[str] | None,
                      correct: str | None, flip: str | None) -> tuple[list[dict[str, Any]], str]:
    """(filtered grid rows, status line) for the explorer."""
    df = data.samples(run_id)
    flips, note, base_df = None, "", None
    if baseline:
        try:
            flips = data.flips(run_id, baseline)
            base_df = data.samples(baseline)
        except WorkbenchError as exc:
            note = f" Flip status unavailable: {exc}"
    rows = sample_rows(df, data.run(run_id).manifest, flips=flips, linked=data.linked_artifacts(run_id),
                       baseline=base_df)
    shown = filter_samples(rows, tasks=tasks, correct=correct, flip=flip)
    return shown, f"{len(shown)} of {len(rows)} samples." + note


def _labelled(label: str, control) -> html.Div:
    return html.Div([html.Label(label, htmlFor=control.id), control], className="field")


def samples_page(data: DashboardData, query: dict[str, str], run_id: str) -> html.Div:
    run = data.run(run_id)
    baseline = query.get("baseline") or None
    if baseline:
        data.run(baseline)  # validates the id and fails early on a missing run
    df = data.samples(run_id)
    tasks = list(dict.fromkeys(df["task"]))
    sel_tasks = [t for t in query.get("task", "").split(",") if t in tasks]
    rows, status = samples_grid_rows(data, run_id, baseline, sel_tasks, query.get("correct"), query.get("flip"))
    others = [{"label": f"{run_label(r)} ({r.run_id})", "value": r.run_id} for r in data.runs() if r.run_id != run_id]
    key = query.get("sample")
    return html.Div(id="page-samples", children=[
        html.H2(["Samples of ", html.Code(run_id)]), html.P(as_text(run_label(run)), className="note"),
        dcc.Store(id="se-run", data=run_id),
        html.Div([
            _labelled("Task", dcc.Dropdown(id="se-task", options=tasks, value=sel_tasks, multi=True,
                                           placeholder="all tasks")),
            _labelled("Correctness", dcc.Dropdown(
                id="se-correct", options=[{"label": "all", "value": "all"}, {"label": "correct", "value": "yes"},
                                          {"label": "wrong", "value": "no"}, {"label": "partial", "value": "partial"}],
                value=query.get("correct", "all"), clearable=False)),
            _labelled("Baseline run (for flips and its answers)",
                      dcc.Dropdown(id="se-baseline", options=others, value=baseline, placeholder="none")),
            _labelled("Flip against the baseline", dcc.Dropdown(
                id="se-flip", options=["all", "changed", "right→wrong", "wrong→right", "same"],
                value=query.get("flip", "all"), clearable=False)),
        ], className="controls four"),
        html.Div(status, id="se-status", className="note"),
        dag.AgGrid(id="se-grid", rowData=rows, columnDefs=sample_columns(baseline is not None),
                   defaultColDef=_DEFAULT_COL, getRowId="params.data.key", style=_grid_style(len(rows), "460px"),
                   dashGridOptions=_grid_options(len(rows), rowSelection={"mode": "singleRow", "checkboxes": False,
                                                                          "enableClickSelection": True})),
        html.Div(detail_panel(data, run_id, key, baseline) if key else
                 html.P("Click a row to see the sample.", className="note"), id="se-detail", className="detail"),
    ])


def _answer_block(d: dict[str, Any], id_prefix: str) -> list:
    """What one run answered: the generation (once, as text) or the picked choice; filtered predictions."""
    if d["generation"] == "":
        out = [html.H4("Generated text"), html.P("(empty: the model generated nothing)", className="note",
                                                 id=f"{id_prefix}-generation")]
    elif d["generation"] is not None:
        out = [html.H4("Generated text"), long_text(d["generation"], f"{id_prefix}-generation")]
    else:
        out = [html.Div([html.B("answer: "), html.Code(clip(repr(d["answer"]), _TEXT_CHARS), id=f"{id_prefix}-answer")])]
    if d["predictions"]:
        out.append(html.Ul([html.Li([f"extracted ({f}): ", html.Code(clip(repr(v), 300))])
                            for f, v in d["predictions"].items()], id=f"{id_prefix}-predictions"))
    return out


def _scores(d: dict[str, Any], id_: str) -> html.Ul:
    def item(m: str, v: Any) -> html.Li:
        text = f"{metric_label(m, d['directions'].get(m, 'higher'))}: {_num(v, 4) if isinstance(v, float) else v}"
        return html.Li(html.B(text) if m == d["primary"] else text)

    return html.Ul([item(m, v) for m, v in d["scores"].items()], id=id_)


def detail_panel(data: DashboardData, run_id: str, key: str, baseline: str | None = None) -> html.Div:
    """Prompt, target, the answer (beside the baseline's), choices with log-likelihoods, scores, artifacts."""
    run = data.run(run_id)
    d = sample_detail(data.samples(run_id), key, run.manifest)
    if d is None:
        return error_box(f"run {run_id} has no sample {key!r}")
    b = None
    if baseline:
        try:
            b = sample_detail(data.samples(baseline), key, data.run(baseline).manifest)
        except WorkbenchError:
            b = None
    parts: list = [html.H3([d["task"], " #", d["doc_id"]], id="detail-title"),
                   html.H4("Prompt"), long_text(d["prompt"], "detail-prompt"),
                   html.Div([html.B("target: "), html.Code(clip(repr(d["target"]), _TEXT_CHARS), id="detail-target")])]
    labels = run_labels([run, data.run(baseline)] if b is not None else [run])
    ours = [html.H4(["This run · ", labels[run_id]]), *_answer_block(d, "detail"), html.H4("Scores"),
            _scores(d, "detail-scores")]
    if b is not None:
        theirs = [html.H4(["Baseline · ", labels[baseline]]), *_answer_block(b, "baseline"),
                  html.H4("Scores"), _scores(b, "baseline-scores")]
        parts.append(html.Div([html.Div(ours, className="half"), html.Div(theirs, className="half", id="detail-baseline")],
                              className="row answers"))
    else:
        parts.append(html.Div(ours, className="answers"))
    if d["choices"]:
        base_pick = {c["choice"] for c in b["choices"] if c["predicted"]} if b else set()
        head = ["choice", "log-likelihood", "greedy", "picked"] + (["baseline picked"] if b else []) + ["gold"]
        parts += [html.H4("Choices"), html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in head]))] +
            [html.Tbody([html.Tr([html.Td(html.Code(clip(repr(c["choice"]), 300))),
                                  html.Td("–" if c["loglikelihood"] is None else f"{c['loglikelihood']:.4f}"),
                                  html.Td("yes" if c["is_greedy"] else ""), html.Td("◀" if c["predicted"] else "")]
                                 + ([html.Td("◀" if c["choice"] in base_pick else "")] if b else [])
                                 + [html.Td("✓" if c["choice"] == d["target"] else "")],
                                 className="picked" if c["predicted"] else "") for c in d["choices"]])],
            className="plain", id="detail-choices")]
    parts.append(top_units_panel(data, run_id, key))
    parts.append(html.Div(artifact_links(data, run_id, key), id="detail-artifacts-box"))
    if data.jobs is not None:
        parts.append(job_box(data, run_id, key))
    return html.Div(parts)


def artifact_links(data: DashboardData, run_id: str, key: str) -> list:
    """Links to the artifacts whose manifest names this sample as its source."""
    linked = data.linked_artifacts(run_id).get(key, [])
    task, _, doc = key.rpartition("#")
    return [html.H4(f"Interpretability artifacts ({len(linked)})"),
            html.Ul([html.Li(dcc.Link(f"{as_text(m.get('kind'))} · {m['id']}", href=f"/artifacts/{quote(m['id'])}"))
                     for m in linked], id="detail-artifacts") if linked else
            html.P(["None yet: create one below, or ", html.Code(f"workbench interp attention --model SPEC --run {run_id} "
                                                                  f"--sample {doc} --task {task}")], className="note")]


def job_box(data: DashboardData, run_id: str, key: str) -> html.Div:
    """Run a tool on this sample with the run's own model (a quantized run: its weights unquantized, said so)
    in the background; the panel polls it. A model without torch weights gets the reason, not a button."""
    from workbench.interp.tools import sample_tools

    spec = str(data.run(run_id).manifest.get("model", {}).get("spec", ""))
    try:
        load_spec, why = data.jobs.weights_for(spec)
    except ModelError as exc:
        return html.Div(html.Span(f"Interpretability artifacts cannot be created for this run: {exc}",
                                  className="note", id="job-unavailable"), className="jobs", id="job-box")
    return html.Div([
        html.Span(["Create with ", html.Code(load_spec, id="job-model"), ": "]),
        dcc.Dropdown(id="job-tool", options=sample_tools(), value=sample_tools()[0], clearable=False,
                     style={"width": "180px", "flex": "0 0 180px"}),
        html.Button("Create artifact", id="job-create", n_clicks=0, className="button"),
        html.Span(id="job-status", className="note"),
        dcc.Store(id="job-id"), dcc.Store(id="job-sample", data={"run_id": run_id, "key": key}),
        dcc.Interval(id="job-poll", interval=1000, disabled=True),
        *([html.P(why, className="note jobs-note", id="job-weights-note")] if why else []),
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
def _source_link(src: Any) -> Any:
    if not isinstance(src, dict) or not isinstance(src.get("run_id"), str):
        return "–"
    key = f"{src.get('task')}#{src.get('doc_id')}"
    return dcc.Link(as_text(f"{src['run_id']} / {src.get('task')} #{src.get('doc_id')}"),
                    href=f"/samples/{quote(src['run_id'])}?sample={quote(key)}")


def artifacts_page(data: DashboardData, query: dict[str, str]) -> html.Div:
    ms, bad = data.artifact_scan()
    note = problems_note(bad, "artifact", "artifacts-unreadable")
    if not ms:
        return html.Div(id="page-artifacts", children=[html.H2("Interpretability artifacts"), note,
                                                       html.P(f"No artifacts in {data.artifacts_root}.")])
    head = html.Tr([html.Th(h) for h in ("artifact", "kind", "model", "source", "created")])
    body = []
    for m in reversed(ms):
        model = m.get("model")
        spec = model.get("spec") if isinstance(model, dict) else model
        body.append(html.Tr([html.Td(dcc.Link(m["id"], href=f"/artifacts/{quote(m['id'])}")),
                             html.Td(as_text(m.get("kind"))), html.Td(clip(spec, 120)),
                             html.Td(_source_link(m.get("source"))), html.Td(clip(m.get("created"), 40))]))
    return html.Div(id="page-artifacts", children=[html.H2("Interpretability artifacts"), note,
                     html.Table([html.Thead(head), html.Tbody(body)], className="plain", id="artifact-table")])


def artifact_page(data: DashboardData, query: dict[str, str], artifact_id: str) -> html.Div:
    r = data.artifact(artifact_id)
    builder = V.views().get(r.meta.kind)
    body = builder(r) if builder else [html.P(f"No view for artifact kind {r.meta.kind!r}.")]
    return html.Div(id=f"page-artifact-{r.meta.kind}", children=[
                     html.H2([r.meta.kind.replace("_", " "), " · ", html.Code(artifact_id)]),
                     dcc.Store(id="artifact-id", data=artifact_id), V.provenance(r), *body])


# ---- feature browser (neurons and SAE features) ---------------------------------------------------
UNIT_KINDS = ("neurons", "features")


def _unit_result(data: DashboardData, artifact_id: str) -> Any:
    r = data.artifact(artifact_id)
    if r.meta.kind not in UNIT_KINDS:
        raise WorkbenchError(f"artifact {artifact_id} is a {r.meta.kind!r} artifact; the feature browser shows "
                             f"{' and '.join(UNIT_KINDS)} artifacts")
    return r


def unit_search_results(data: DashboardData, artifact_id: str, query: str | None) -> Any:
    """The search results box: links to each matching unit."""
    r = _unit_result(data, artifact_id)
    rows = search_units(r, query)
    if not rows:
        return html.P(f"No {r.unit_name} matches {query!r}.", className="note", id="fb-none")
    return html.Ul([html.Li([dcc.Link(f"{r.unit_name} #{x['unit']}", href=f"/features/{quote(artifact_id)}?unit={x['unit']}"
                                      + (f"&q={quote(query)}" if query else "")),
                             f"  max {x['max']:.3f}, density {x['density']:.4f}; top: {x['top_tokens']}",
                             html.Span(f"  ({x['why']})", className="note") if x["why"] else ""])
                    for x in rows], id="fb-list")


def context_tokens(tokens: list[str], acts: list[float], center: int, scale: float, id_: str | None = None) -> html.Div:
    """One context as text spans shaded by the unit's activation, the activating token outlined."""
    return html.Div([html.Span(t, title=f"{a:.3f}", className="tok" + (" center" if i == center else ""),
                               style={"backgroundColor": F.token_color(float(a), scale),
                                      **({"outline": "2px solid #333"} if i == center else {})})
                     for i, (t, a) in enumerate(zip(tokens, acts))], className="tokens context",
                    **({"id": id_} if id_ else {}))


def unit_detail(r: Any, unit: int) -> html.Div:
    """Statistics, judge explanation, top contexts, histogram and logit effects of one unit."""
    if not 0 <= unit < len(r.stats):
        return error_box(f"no {r.unit_name} #{unit} (this artifact has {len(r.stats)})")
    st = r.stats.iloc[unit]
    parts: list = [html.H3(f"{r.unit_name} #{unit}", id="fb-unit-title"),
                   html.P(f"max {st['max']:.3f}, mean {st['mean']:.4f}, density {st['density']:.4f} "
                          f"({int(st['n_fired']):,} of {r.n_tokens:,} tokens > 0)", className="note")]
    ex = getattr(r, "explanations", None)
    if ex is not None and len(ex) and (ex["unit"] == unit).any():
        e = ex[ex["unit"] == unit].iloc[0]
        parts.append(html.P([html.B(f"judge ({e['judge']}): "), f"fires on {e['explanation']}",
                             html.Span(f"  simulation r = {e['score']:.3f} (control {e['control_score']:.3f})",
                                       className="note")], id="fb-explanation"))
    ctx = r.contexts[r.contexts["unit"] == unit].sort_values("rank")
    scale = float(st["max"]) if st["max"] > 0 else 1.0
    parts += [html.H4(f"Top {len(ctx)} contexts"),
              html.Div([html.Div([html.Span(f"{c.activation:.3f} ", className="note"),
                                  context_tokens(list(c.tokens), list(c.acts), int(c.center), scale),
                                  html.Span(f" {c.ref}", className="note")], className="context-row")
                        for c in ctx.itertuples()], id="fb-contexts")]
    parts.append(V.graph(F.unit_histogram(r.hist[unit], r.hist_edges[unit],
                                          f"{r.unit_name} #{unit}: activation histogram"
                                          + (" (non-zero activations)" if r.meta.kind == "features" else "")),
                         "fb-histogram"))
    lg = r.logits[r.logits["unit"] == unit]
    cols = []
    for sign in ("promote", "suppress"):
        part = lg[lg["sign"] == sign].sort_values("rank")
        cols.append(html.Div([html.H4(f"{'Promotes' if sign == 'promote' else 'Suppresses'} (direct logit effect)"),
                              html.Table([html.Tbody([html.Tr([html.Td(html.Code(repr(x.token))), html.Td(f"{x.value:+.3f}")])
                                                      for x in part.itertuples()])], className="plain",
                                         id=f"fb-logits-{sign}")], className="half"))
    parts.append(html.Div(cols, className="row"))
    return html.Div(parts, id="fb-detail")


def features_page(data: DashboardData, query: dict[str, str], artifact_id: str) -> html.Div:
    """Browse the units of a `neurons` or `features` artifact: search by id or token, one unit in detail."""
    r = _unit_result(data, artifact_id)
    q = query.get("q", "")
    unit = query.get("unit")
    if unit is not None and not unit.lstrip("#").isdigit():
        return error_box(f"unit must be a number, got {unit!r}")
    first = search_units(r, q, limit=1)
    shown = int(unit.lstrip("#")) if unit is not None else (first[0]["unit"] if first else None)
    where = (f"layer {r.layer} ({r.site})" if r.meta.kind == "neurons" else f"SAE {r.sae_id} ({r.site})")
    return html.Div(id="page-features", children=[
        html.H2([f"{r.unit_name.capitalize()} browser · ", html.Code(artifact_id)]),
        html.P([f"{len(r.stats)} {r.unit_name}s of {r.meta.model.get('spec')} {where}, over {r.n_tokens:,} tokens of "
                f"corpus {r.corpus_id}. ", dcc.Link("artifact", href=f"/artifacts/{quote(artifact_id)}")],
               className="note"),
        dcc.Store(id="artifact-id", data=artifact_id),
        dcc.Input(id="fb-query", type="text", value=q, debounce=True, placeholder="unit id (e.g. 42) or token text",
                  style={"width": "320px"}),
        html.Div(unit_search_results(data, artifact_id, q), id="fb-results"),
        unit_detail(r, shown) if shown is not None else html.P("No unit to show.", className="note"),
    ])


def top_units_panel(data: DashboardData, run_id: str, key: str) -> html.Div:
    """The sample's top neurons / SAE features, from the newest `top_units` artifact linked to it."""
    linked = [m for m in data.linked_artifacts(run_id).get(key, []) if m.get("kind") == "top_units"]
    if not linked:
        return html.Div(id="detail-top-units")
    r = data.artifact(linked[-1]["id"])
    return html.Div([html.H4(["Top features at the answer position (", dcc.Link(r.meta.id, href=f"/artifacts/{quote(r.meta.id)}"),
                              f"): answer {r.answer!r}"]), V.top_units_table(r, "detail-top-units-table")],
                    id="detail-top-units")


# ---- routing --------------------------------------------------------------------------------------
# first path segment -> (builder(data, query, *ids), how many id segments follow it)
ROUTES: dict[str, tuple[Callable[..., html.Div], int]] = {
    "": (leaderboard_page, 0),
    "compare": (compare_page, 0),
    "samples": (samples_page, 1),
    "artifacts": (artifacts_page, 0),
    "artifact": (artifact_page, 1),
    "features": (features_page, 1),
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
