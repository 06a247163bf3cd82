"""Dashboard layouts and callback functions, called directly on runs and artifacts made by the real tools."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from dash import dcc, html

from workbench.analysis.compare import compare_runs
from workbench.dashboard import pages
from workbench.dashboard.data import filter_samples, flip_states, leaderboard, sample_detail, sample_rows
from workbench.interp import artifacts


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    for c in children if isinstance(children, (list, tuple)) else [children]:
        if c is not None and not isinstance(c, (str, int, float)):
            yield from _walk(c)


def _ids(node) -> set[str]:
    return {n.id for n in _walk(node) if isinstance(getattr(n, "id", None), str)}


def _text(node) -> str:
    out = []
    for n in _walk(node):
        ch = getattr(n, "children", None)
        for c in ch if isinstance(ch, (list, tuple)) else [ch]:
            if isinstance(c, (str, int, float)):
                out.append(str(c))
    return " ".join(out)


def test_leaderboard_cells_are_the_runs_metrics(dash_app, dash_env):
    data = dash_app.workbench_data
    cols, rows = leaderboard(data.runs())
    assert sorted(r["run_id"] for r in rows) == ["run-a", "run-b", "run-xss"]
    assert [r["created"] for r in rows] == sorted(r["created"] for r in rows)
    rows = sorted(rows, key=lambda r: r["run_id"])
    assert [(c.kind, c.scope) for c in cols] == [("group", "mmlu"), ("task", "arc_easy")]
    for row in rows[:2]:
        m = data.run(row["run_id"]).metrics
        for c in cols:
            e = m["groups" if c.kind == "group" else "tasks"][c.scope]["acc"]
            assert row[c.field] == f"{e['value']:.3f} [{e['ci95_low']:.3f}, {e['ci95_high']:.3f}]"
            assert row[c.field + "_metric"] == "acc"
    assert {r["backend"] for r in rows} == {"hf"}
    only_b = pages.leaderboard_filtered(data, None, [rows[1]["model"]], ["hf"])
    assert [r["run_id"] for r in only_b] == ["run-b"]
    assert pages.leaderboard_filtered(data, None, None, ["gguf"]) == []


def test_leaderboard_selection_links():
    assert "Tick runs" in _text(html.Div(pages.leaderboard_actions([])))
    links = pages.leaderboard_actions([{"run_id": "run-b"}, {"run_id": "run-a"}])
    assert links[0].href == "/compare?runs=run-b,run-a"
    assert [l.href for l in links[1:]] == ["/samples/run-b", "/samples/run-a?baseline=run-b"]
    one = pages.leaderboard_actions([{"run_id": "run-a"}])
    assert [l.href for l in one] == ["/samples/run-a"]


def test_comparison_page_shows_the_compare_module_numbers(dash_app, dash_env):
    data = dash_app.workbench_data
    page = pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=bh")
    assert {"cmp-grid", "cmp-forest", "cmp-flips"} <= _ids(page)
    ref = compare_runs([data.run("run-a"), data.run("run-b")], correction="bh")
    grid = next(n for n in _walk(page) if getattr(n, "id", None) == "cmp-grid")
    want = [p for p in ref.paired if p.primary]
    assert len(grid.rowData) == len(want)
    for row, p in zip(grid.rowData, want):
        assert row["delta"] == pytest.approx(p.stats.delta, abs=1e-4)
        assert row["p_adjusted"] == pytest.approx(p.p_adjusted, abs=1e-5)
    flips = next(n for n in _walk(page) if getattr(n, "id", None) == "cmp-flips")
    assert len(flips.rowData) == len(ref.flips) > 0
    forest = next(n for n in _walk(page) if getattr(n, "id", None) == "cmp-forest")
    headline = [r["scope"] for r in grid.rowData if r["scope"].startswith("[") or r["scope"] == "arc_easy"]
    assert sorted(forest.figure.data[0].y) == sorted(headline)
    page = pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=bh&subjects=1")
    forest = next(n for n in _walk(page) if getattr(n, "id", None) == "cmp-forest")
    assert sorted(forest.figure.data[0].y) == sorted(r["scope"] for r in grid.rowData)
    assert "unknown correction" in _text(pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=x"))
    assert "at least two runs" in _text(pages.page_for(data, "/compare", "?runs=run-a"))


def test_flip_status_agrees_with_compare_flipped_items(dash_app):
    data = dash_app.workbench_data
    ref = compare_runs([data.run("run-a"), data.run("run-b")], n_boot=100).flips
    states = flip_states(data.samples("run-b"), data.samples("run-a"))
    changed = {k: v for k, v in states.items() if v != "same"}
    assert changed == {f"{t}#{d}": dirn for t, d, dirn in zip(ref.task, ref.doc_id, ref.direction)}
    assert len(states) == len(data.samples("run-a"))


def test_sample_filters(dash_app):
    data = dash_app.workbench_data
    df = data.samples("run-b")
    rows, status = pages.samples_grid_rows(data, "run-b", "run-a", None, None, None)
    assert len(rows) == len(df) and status.startswith(f"{len(df)} of {len(df)}")
    arc, _ = pages.samples_grid_rows(data, "run-b", "run-a", ["arc_easy"], "no", None)
    assert len(arc) == int(((df.task == "arc_easy") & (df.acc == 0)).sum())
    assert {r["task"] for r in arc} == {"arc_easy"} and {r["correct"] for r in arc} == {"no"}
    changed = filter_samples(rows, flip="changed")
    rw = filter_samples(rows, flip="right→wrong")
    assert len(changed) > 0 and len(rw) == sum(r["flip"] == "right→wrong" for r in rows)
    assert len(changed) == len(rw) + len(filter_samples(rows, flip="wrong→right"))
    _, note = pages.samples_grid_rows(data, "run-b", None, None, None, None)
    assert "Flip" not in note


def test_sample_detail_holds_the_stored_loglikelihoods(dash_app, dash_env):
    data = dash_app.workbench_data
    df = data.samples("run-a")
    r = df.iloc[3]
    d = sample_detail(df, f"{r['task']}#{r['doc_id']}")
    assert d["prompt"] == r["prompt"]
    np.testing.assert_allclose([c["loglikelihood"] for c in d["choices"]], r["loglikelihoods"])
    assert [c["predicted"] for c in d["choices"]].index(True) == int(r["prediction"])
    assert d["scores"]["acc"] == r["acc"]
    panel = pages.detail_panel(data, "run-a", dash_env.linked_key)
    assert {"detail-prompt", "detail-choices", "detail-artifacts"} <= _ids(panel)
    links = {n.href for n in _walk(panel) if isinstance(n, dcc.Link)}
    assert links == {f"/artifacts/{dash_env.ids['attention']}", f"/artifacts/{dash_env.ids['logit_lens']}"}
    grid = sample_rows(df, linked=data.linked_artifacts("run-a"))
    assert {r["key"]: r["artifacts"] for r in grid if r["artifacts"]} == {dash_env.linked_key: 2}


def test_model_output_is_text_never_html(dash_app, dash_env):
    """Hostile prompt and generation reach the layout as plain strings in html.Pre, never as markup."""
    from workbench.dashboard.data import sample_key

    df = dash_app.workbench_data.samples("run-xss")
    panel = pages.detail_panel(dash_app.workbench_data, "run-xss", sample_key(df.task[0], df.doc_id[0]))
    pre = {n.id: n for n in _walk(panel) if isinstance(n, html.Pre)}
    assert dash_env.xss in pre["detail-prompt"].children and dash_env.xss in pre["detail-generation"].children
    assert not any(isinstance(n, dcc.Markdown) or getattr(n, "dangerously_allow_html", False) for n in _walk(panel))


@pytest.mark.parametrize("path", ["/samples/..%2F..%2Fetc", "/samples/a%2Fb", "/samples/.hidden",
                                  "/artifacts/..", "/artifacts/..%2Fruns", "/compare"])
def test_ids_from_the_url_are_validated(dash_app, path):
    data = dash_app.workbench_data
    page = pages.page_for(data, path, "?runs=run-a,..%2Fx" if path == "/compare" else "")
    assert page.id == "page-error" and "invalid" in page.children


@pytest.mark.parametrize("path", ["/nothing", "/samples", "/samples/run-a/extra", "/artifacts/a/b"])
def test_unknown_pages(dash_app, path):
    page = pages.page_for(dash_app.workbench_data, path, "")
    assert page.id == "page-error" and "no page" in page.children


def test_missing_run_and_artifact(dash_app):
    data = dash_app.workbench_data
    assert "no run run-zzz" in pages.page_for(data, "/samples/run-zzz", "").children
    assert "no artifact attention-zzz" in pages.page_for(data, "/artifacts/attention-zzz", "").children
    assert "no run run-zzz" in pages.page_for(data, "/samples/run-a", "?baseline=run-zzz").children


EXPECTED_IDS = {"attention": {"attn-layer", "attn-head", "attn-pattern", "attn-overview"},
                "patching": {"patch-exact-resid_pre", "patch-atp-resid_pre", "patch-exact-head"},
                "probe": {"probe-accuracy"}, "attribution": {"attr-ig", "attr-gxi", "attr-bars"},
                "logit_lens": {"lens-table-0", "lens-target"}, "drift": {"drift-cosine", "drift-error"},
                "trace": {"trace-fact", "trace-state", "trace-mlp", "trace-attn", "trace-avg-state", "trace-avg-mlp",
                          "trace-avg-attn"},
                "circuit": {"circuit-method", "circuit-k", "circuit-ks", "circuit-graph", "circuit-faithfulness"}}


@pytest.mark.parametrize("kind", sorted(EXPECTED_IDS))
def test_every_artifact_kind_has_a_view(dash_app, dash_env, kind):
    aid = dash_env.ids[kind]
    page = pages.page_for(dash_app.workbench_data, f"/artifacts/{aid}", "")
    assert page.id == f"page-artifact-{kind}", page.children
    assert EXPECTED_IDS[kind] <= _ids(page)
    r = artifacts.load(aid, dash_env.artifacts)
    if kind == "probe":
        fig = next(n for n in _walk(page) if getattr(n, "id", None) == "probe-accuracy").figure
        np.testing.assert_allclose(fig.data[0].y, r.by_layer["accuracy"])
        np.testing.assert_allclose(fig.data[1].y, r.by_layer["control_accuracy"])
    if kind == "attribution":
        spans = next(n for n in _walk(page) if getattr(n, "id", None) == "attr-ig").children
        assert [s.children for s in spans] == r.meta.tokens[0][: len(r.ig)]
        strongest = int(np.argmax(np.abs(r.ig)))
        assert spans[strongest].style["backgroundColor"].endswith(",0.850)")
    if kind == "patching":
        fig = next(n for n in _walk(page) if getattr(n, "id", None) == "patch-exact-resid_pre").figure
        np.testing.assert_allclose(fig.data[0].z, r.exact_resid_pre)
    if kind == "trace":
        fig = next(n for n in _walk(page) if getattr(n, "id", None) == "trace-state").figure
        np.testing.assert_allclose(fig.data[0].z, r.grid("state", 0).T)
        assert "&lt;" in fig.data[0].y[0] and not any("<" in y for y in fig.data[0].y)  # model text escaped
        avg = next(n for n in _walk(page) if getattr(n, "id", None) == "trace-avg-mlp").figure
        np.testing.assert_allclose(avg.data[0].z, r.average("mlp").T)
    if kind == "circuit":
        curve = next(n for n in _walk(page) if getattr(n, "id", None) == "circuit-faithfulness").figure
        eap = r.curve("eap")
        np.testing.assert_allclose(curve.data[0].y, eap[eap["k"] > 0]["faithfulness"])


def _array(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {dtype, bdata (base64), shape}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        return a.reshape([int(x) for x in str(shape).split(",")]) if shape else a
    return np.asarray(v, dtype=float)


def _post(client, output: str, outputs: list[dict], inputs: list[dict], state: list[dict], changed: list[str]):
    r = client.post("/_dash-update-component", json={"output": output, "outputs": outputs, "inputs": inputs,
                                                      "state": state, "changedPropIds": changed})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_json()["response"]


def test_attention_head_switch_through_the_server(dash_app, dash_env):
    """The layer/head callback as the browser calls it: the figure is that head's stored pattern."""
    r = artifacts.load(dash_env.ids["attention"], dash_env.artifacts)
    client = dash_app.server.test_client()
    resp = _post(client, "attn-pattern.figure", {"id": "attn-pattern", "property": "figure"},
                 [{"id": "attn-layer", "property": "value", "value": 1}, {"id": "attn-head", "property": "value", "value": 1}],
                 [{"id": "artifact-id", "property": "data", "value": dash_env.ids["attention"]}], ["attn-head.value"])
    fig = resp["attn-pattern"]["figure"]
    np.testing.assert_allclose(_array(fig["data"][0]["z"]), r.patterns[1, 1], atol=1e-6)
    assert f"layer {r.layers[1]} head 1" in fig["layout"]["title"]["text"]


def test_trace_fact_switch_through_the_server(dash_app, dash_env):
    r = artifacts.load(dash_env.ids["trace"], dash_env.artifacts)
    client = dash_app.server.test_client()
    outs = [{"id": f"trace-{k}", "property": "figure"} for k in ("state", "mlp", "attn")]
    resp = _post(client, "..trace-state.figure...trace-mlp.figure...trace-attn.figure..", outs,
                 [{"id": "trace-fact", "property": "value", "value": 1}],
                 [{"id": "artifact-id", "property": "data", "value": dash_env.ids["trace"]}], ["trace-fact.value"])
    np.testing.assert_allclose(_array(resp["trace-mlp"]["figure"]["data"][0]["z"]), r.grid("mlp", 1).T, atol=1e-6)
    assert resp["trace-state"]["figure"]["data"][0]["y"][-1] == "5: fox"  # the second fact, subject starred before


def test_circuit_k_slider_through_the_server(dash_app, dash_env):
    """Moving the K slider redraws the graph with the top-K edges on input->logits paths."""
    r = artifacts.load(dash_env.ids["circuit"], dash_env.artifacts)
    client = dash_app.server.test_client()
    ks = [5, 10, 20, 30, 50, 75]
    resp = _post(client, "..circuit-graph.figure...circuit-faithfulness.figure..",
                 [{"id": "circuit-graph", "property": "figure"}, {"id": "circuit-faithfulness", "property": "figure"}],
                 [{"id": "circuit-method", "property": "value", "value": "eap-ig"},
                  {"id": "circuit-k", "property": "value", "value": 2}],
                 [{"id": "circuit-ks", "property": "data", "value": ks},
                  {"id": "artifact-id", "property": "data", "value": dash_env.ids["circuit"]}], ["circuit-k.value"])
    fig = resp["circuit-graph"]["figure"]
    edges = r.circuit_edges("eap-ig", 20)
    assert f"Top 20 edges by |eap-ig| ({len(edges)} on input" in fig["layout"]["title"]["text"]
    n_lines = sum(len([x for x in t["x"] if x is None]) for t in fig["data"] if t.get("mode") == "lines")
    assert n_lines == len(edges)
    assert resp["circuit-faithfulness"]["figure"]["layout"]["shapes"][-1]["x0"] == 20


def test_routing_callback_through_the_server(dash_app):
    client = dash_app.server.test_client()
    resp = _post(client, "page.children", {"id": "page", "property": "children"},
                 [{"id": "url", "property": "pathname", "value": "/samples/..%2Fx"},
                  {"id": "url", "property": "search", "value": ""}], [], ["url.pathname"])
    assert "invalid run id" in json.dumps(resp)
    index = client.get("/").get_data(as_text=True)
    assert "cdn" not in index.lower() and "unpkg" not in index.lower()


def _wait(runner, job_id, timeout=120):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        job = runner.get(job_id)
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_background_job_saves_an_artifact_linked_to_the_sample(dash_app, dash_env):
    data = dash_app.workbench_data
    df = data.samples("run-b")
    row = df[df.task == "mmlu_anatomy"].iloc[2]
    key = f"{row['task']}#{row['doc_id']}"
    spec = data.run("run-b").manifest["model"]["spec"]
    job = _wait(data.jobs, data.jobs.submit("logit_lens", "run-b", key, spec).id)
    assert job.status == "done", job.error
    m = artifacts.read_manifest(job.artifact_id, dash_env.artifacts)
    assert m["source"]["run_id"] == "run-b" and f"{m['source']['task']}#{m['source']['doc_id']}" == key
    assert m["prompts"] == [row["prompt"]] and m["model"]["spec"] == spec
    links = {n.href for n in _walk(html.Div(pages.artifact_links(data, "run-b", key))) if isinstance(n, dcc.Link)}
    assert links == {f"/artifacts/{job.artifact_id}"}
    status = pages.job_status(job)
    assert status[1].href == f"/artifacts/{job.artifact_id}"


def test_background_job_failure_is_reported(dash_app):
    data = dash_app.workbench_data
    df = data.samples("run-b")
    row = df[df.task == "arc_easy"].iloc[0]   # ARC's gold answer is several tokens: attribution refuses it
    job = _wait(data.jobs, data.jobs.submit("attribution", "run-b", f"arc_easy#{row['doc_id']}",
                                            data.run("run-b").manifest["model"]["spec"]).id)
    assert job.status == "failed" and "not a single token" in job.error
    assert "failed: " in pages.job_status(job).children
    with pytest.raises(Exception, match="unknown tool"):
        data.jobs.submit("nope", "run-b", "arc_easy#0", "x")
