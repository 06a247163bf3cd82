"""The Dash app factory: layout shell, URL routing and callbacks, all registered on the instance.

`create_app(store_dir, artifacts_dir)` returns a `dash.Dash`; `app.server` is the Flask WSGI app that
gunicorn serves (`dashboards.app:server`). Assets are served locally, so the dashboard works offline.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench import settings

# Dash's dev tools ask a remote server for the newest version unless told not to (set before import).
settings.apply_environment()

import dash  # noqa: E402
from dash import Input, Output, State, dcc, html, no_update  # noqa: E402

from workbench.dashboard import figures as F  # noqa: E402
from workbench.dashboard import pages  # noqa: E402
from workbench.dashboard import views as V  # noqa: E402
from workbench.dashboard.data import DashboardData  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402

ASSETS = Path(__file__).with_name("assets")


def shell() -> html.Div:
    nav = html.Nav([html.Span("workbench", className="brand"), dcc.Link("Leaderboard", href="/", id="nav-leaderboard"),
                    dcc.Link("Artifacts", href="/artifacts", id="nav-artifacts")], className="nav")
    return html.Div([dcc.Location(id="url", refresh=False), nav,
                     dcc.Loading(html.Div(id="page"), type="dot", delay_show=300)], className="shell")


def create_app(store_dir: str | os.PathLike | None = None, artifacts_dir: str | os.PathLike | None = None, *,
               jobs: bool = True) -> dash.Dash:
    """A dashboard over one run store (read only) and one artifact root (read; with `jobs`, the sample
    panel may add artifacts to it through background jobs)."""
    data = DashboardData(store_dir, artifacts_dir)
    if jobs:
        from workbench.dashboard.jobs import JobRunner

        data.jobs = JobRunner(data.store.root, data.artifacts_root)
    app = dash.Dash(__name__, title="workbench dashboard", assets_folder=str(ASSETS), serve_locally=True,
                    suppress_callback_exceptions=True, update_title=None)
    app.layout = shell()
    app.workbench_data = data  # type: ignore[attr-defined]

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        return pages.page_for(data, pathname, search)

    @app.callback(Output("lb-grid", "rowData"), Input("lb-suite", "value"), Input("lb-model", "value"),
                  Input("lb-backend", "value"), prevent_initial_call=True)
    def filter_leaderboard(suites, models, backends):
        return pages.leaderboard_filtered(data, suites, models, backends)

    @app.callback(Output("lb-actions", "children"), Input("lb-grid", "selectedRows"))
    def leaderboard_actions(selected):
        return pages.leaderboard_actions(selected)

    @app.callback(Output("lb-plot-box", "children"), Input("lb-grid", "virtualRowData"),
                  Input("lb-grid", "selectedRows"), State("lb-columns", "data"), prevent_initial_call=True)
    def leaderboard_plot(rows, selected, columns):
        return pages.leaderboard_plot(columns or [], rows, selected)

    @app.callback(Output("se-grid", "rowData"), Output("se-status", "children"), Output("se-grid", "columnDefs"),
                  Input("se-task", "value"), Input("se-correct", "value"), Input("se-flip", "value"),
                  Input("se-baseline", "value"), State("se-run", "data"), prevent_initial_call=True)
    def filter_samples(tasks, correct, flip, baseline, run_id):
        try:
            rows, status = pages.samples_grid_rows(data, run_id, baseline, tasks, correct, flip)
        except WorkbenchError as exc:
            return [], str(exc), no_update
        # The baseline's answer column comes and goes with the baseline; other filters keep the columns as set.
        columns = pages.sample_columns(bool(baseline)) if dash.ctx.triggered_id == "se-baseline" else no_update
        return rows, status, columns

    @app.callback(Output("se-detail", "children"), Input("se-grid", "selectedRows"), State("se-run", "data"),
                  State("se-baseline", "value"), prevent_initial_call=True)
    def show_sample(selected, run_id, baseline):
        if not selected:
            return no_update
        try:
            return pages.detail_panel(data, run_id, selected[0]["key"], baseline)
        except WorkbenchError as exc:
            return pages.error_box(str(exc))

    @app.callback(Output("attn-pattern", "figure"), Input("attn-layer", "value"), Input("attn-head", "value"),
                  State("artifact-id", "data"), prevent_initial_call=True)
    def attention_head(row, head, artifact_id):
        r = data.artifact(artifact_id)
        return F.attention_pattern(r.patterns, int(row), int(head), list(r.meta.tokens[0]), r.layers[int(row)])

    @app.callback(Output("attn-overview", "figure"), Input("attn-score", "value"), State("artifact-id", "data"),
                  prevent_initial_call=True)
    def attention_scores(metric, artifact_id):
        return F.head_score_overview(data.artifact(artifact_id).head_scores, metric)

    @app.callback(Output("fb-results", "children"), Input("fb-query", "value"), State("artifact-id", "data"),
                  prevent_initial_call=True)
    def search_units(query, artifact_id):
        try:
            return pages.unit_search_results(data, artifact_id, query)
        except WorkbenchError as exc:
            return pages.error_box(str(exc))
    @app.callback(Output("trace-state", "figure"), Output("trace-mlp", "figure"), Output("trace-attn", "figure"),
                  Input("trace-fact", "value"), State("artifact-id", "data"), prevent_initial_call=True)
    def trace_fact(fact, artifact_id):
        return tuple(V.trace_figures(data.artifact(artifact_id), int(fact or 0)))

    @app.callback(Output("circuit-graph", "figure"), Output("circuit-faithfulness", "figure"),
                  Input("circuit-method", "value"), Input("circuit-k", "value"), State("circuit-ks", "data"),
                  State("artifact-id", "data"), prevent_initial_call=True)
    def circuit_k(method, index, ks, artifact_id):
        return V.circuit_figures(data.artifact(artifact_id), method, int(ks[int(index)]))

    @app.callback(Output("job-id", "data"), Output("job-poll", "disabled"), Output("job-status", "children"),
                  Input("job-create", "n_clicks"), State("job-tool", "value"), State("job-sample", "data"),
                  prevent_initial_call=True)
    def create_job(n_clicks, tool_name, sample):
        if not n_clicks or data.jobs is None:
            return no_update, no_update, no_update
        try:
            spec = str(data.run(sample["run_id"]).manifest.get("model", {}).get("spec", ""))
            job = data.jobs.submit(tool_name, sample["run_id"], sample["key"], spec)
        except WorkbenchError as exc:
            return None, True, html.Span(str(exc), className="error-inline", id="job-error")
        return job.id, False, pages.job_status(job)

    @app.callback(Output("job-status", "children", allow_duplicate=True),
                  Output("job-poll", "disabled", allow_duplicate=True), Output("detail-artifacts-box", "children"),
                  Input("job-poll", "n_intervals"), State("job-id", "data"), State("job-sample", "data"),
                  prevent_initial_call=True)
    def poll_job(_, job_id, sample):
        job = data.jobs.get(job_id) if data.jobs is not None and job_id else None
        finished = job is None or job.finished
        links = pages.artifact_links(data, sample["run_id"], sample["key"]) if finished else no_update
        return pages.job_status(job), finished, links

    return app


__all__ = ["create_app"]
