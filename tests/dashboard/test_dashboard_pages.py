"""Dashboard layouts and callback functions, called directly on runs and artifacts made by the real tools."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from dash import dcc, html

from dashboard.components import walk
from workbench.analysis.compare import answer_text, compare_runs
from workbench.analysis.text import one_line
from workbench.dashboard import pages
from workbench.dashboard.data import filter_samples, flip_states, leaderboard, sample_detail, sample_rows
from workbench.interp import artifacts


def _ids(node) -> set[str]:
    return {n.id for n in walk(node) if isinstance(getattr(n, "id", None), str)}


def _text(node) -> str:
    out = []
    for n in walk(node):
        ch = getattr(n, "children", None)
        for c in ch if isinstance(ch, (list, tuple)) else [ch]:
            if isinstance(c, (str, int, float)):
                out.append(str(c))
    return " ".join(out)


def test_leaderboard_cells_are_the_runs_metrics(dash_app, dash_env):
    data = dash_app.workbench_data
    cols, rows = leaderboard(data.runs())
    assert sorted(r["run_id"] for r in rows) == sorted(dash_env.good_runs)
    assert [r["created"] for r in rows] == sorted(r["created"] for r in rows)
    assert [(c.kind, c.scope) for c in cols] == [("group", "mmlu"), ("task", "arc_easy"), ("task", "xstest")]
    by_id = {r["run_id"]: r for r in rows}
    for rid in ("run-a", "run-b"):
        row, m = by_id[rid], data.run(rid).metrics
        for c in cols[:2]:
            e = m["groups" if c.kind == "group" else "tasks"][c.scope]["acc"]
            assert (row[c.field], row[c.field + "_lo"], row[c.field + "_hi"]) == (e["value"], e["ci95_low"], e["ci95_high"])
            assert row[c.field + "_metric"] == "acc" and row[c.field + "_label"] == "acc ↑"
        assert row[cols[2].field] is None
        assert row["label"].startswith("hf:…/tiny-llama") and " · hf · " in row["label"]
    # XSTest declares over_refusal (lower is better): the column shows it, not `refusal`, and the best is the lowest.
    x = cols[2]
    assert (x.metric, x.direction) == ("over_refusal", "lower")
    safe = {rid: data.run(rid).metrics["tasks"]["xstest"]["over_refusal"]["value"] for rid in ("run-safe-a", "run-safe-b")}
    assert {rid: by_id[rid][x.field] for rid in safe} == safe
    best = min(safe, key=safe.get)
    assert by_id[best][x.field + "_best"] and not by_id[max(safe, key=safe.get)][x.field + "_best"]
    assert {r["backend"] for r in rows} == {"hf", "int8", "openai"}
    only_b = pages.leaderboard_filtered(data, None, [by_id["run-b"]["model"]], ["hf"])
    assert [r["run_id"] for r in only_b] == ["run-b"]
    assert pages.leaderboard_filtered(data, None, None, ["gguf"]) == []
    defs = {d["field"]: d for d in pages.leaderboard_columns(cols, rows)}
    assert defs[x.field]["headerName"] == "xstest · over_refusal ↓"
    assert "lower is better" in defs[x.field]["headerTooltip"]
    assert defs["label"]["pinned"] == "left" and defs["label"]["tooltipField"] == "run_id"


def test_leaderboard_lists_what_it_could_not_read(dash_app, dash_env):
    """A stray folder, a stray file and a run with a truncated metrics.json are skipped and named, with why."""
    page = pages.page_for(dash_app.workbench_data, "/", "")
    assert page.id == "page-leaderboard"
    note = next(n for n in walk(page) if getattr(n, "id", None) == "lb-unreadable")
    text = _text(note)
    assert "Could not read 3 runs" in text
    for name in dash_env.stray:
        assert str(dash_env.store / name) in text
    assert "invalid run id 'Old results (copy)'" in text and "not a run directory" in text
    assert "run-truncated" in text and "metrics.json" in text
    grid = next(n for n in walk(page) if getattr(n, "id", None) == "lb-grid")
    assert sorted(r["run_id"] for r in grid.rowData) == sorted(dash_env.good_runs)
    columns = next(n for n in walk(page) if getattr(n, "id", None) == "lb-columns").data
    assert [label for _, label in columns] == ["[mmlu] · acc ↑", "arc_easy · acc ↑", "xstest · over_refusal ↓"]
    plot = pages.leaderboard_plot(columns, grid.rowData, None).figure
    assert [t.name for t in plot.data] == [r["label"] for r in grid.rowData][: pages._MAX_PLOTTED]
    ticked = pages.leaderboard_plot(columns, grid.rowData, [{"run_id": "run-a"}, {"run_id": "run-b"}]).figure
    assert [t.name for t in ticked.data] == [r["label"] for r in grid.rowData if r["run_id"] in ("run-a", "run-b")]
    a = next(t for t in ticked.data if t.name == next(r["label"] for r in grid.rowData if r["run_id"] == "run-a"))
    m = dash_app.workbench_data.run("run-a").metrics
    np.testing.assert_allclose(a.y, [m["groups"]["mmlu"]["acc"]["value"], m["tasks"]["arc_easy"]["acc"]["value"]])
    np.testing.assert_allclose(np.asarray(a.y) + np.asarray(a.error_y.array),
                               [m["groups"]["mmlu"]["acc"]["ci95_high"], m["tasks"]["arc_easy"]["acc"]["ci95_high"]])


def test_leaderboard_selection_links():
    assert "Tick runs" in _text(html.Div(pages.leaderboard_actions([])))
    links = pages.leaderboard_actions([{"run_id": "run-b"}, {"run_id": "run-a"}])
    assert links[0].href == "/compare?runs=run-b,run-a"
    assert [l.href for l in links[1:]] == ["/samples/run-b", "/samples/run-a?baseline=run-b"]
    one = pages.leaderboard_actions([{"run_id": "run-a"}])
    assert [l.href for l in one] == ["/samples/run-a"]


def _node(page, id_):
    return next(n for n in walk(page) if getattr(n, "id", None) == id_)


def test_comparison_page_shows_the_compare_module_numbers(dash_app, dash_env):
    data = dash_app.workbench_data
    page = pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=bh")
    assert {"cmp-grid", "cmp-forest", "cmp-flips"} <= _ids(page)
    ref = compare_runs([data.run("run-a"), data.run("run-b")], correction="bh")
    grid = _node(page, "cmp-grid")
    want = [p for p in ref.paired if p.primary]
    assert len(grid.rowData) == len(want)
    for row, p in zip(grid.rowData, want):
        assert row["delta"] == pytest.approx(p.stats.delta, abs=1e-4)
        assert row["p_adjusted"] == pytest.approx(p.p_adjusted, abs=1e-5)
        assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((p.stats.ci95_low, p.stats.ci95_high), abs=1e-4)
        assert row["metric"] == "acc ↑" and row["better"] == (None if p.stats.delta == 0 else p.stats.delta > 0)
    headers = {c["field"]: c.get("headerName", c["field"]) for c in grid.columnDefs}
    assert headers["p_adjusted"] == "p (bh)" and headers["ci95_low"] == "95% CI of Δ"
    assert headers["delta"] == "Δ (candidate − baseline)"
    flips = _node(page, "cmp-flips")
    assert len(flips.rowData) == len(ref.flips) > 0
    f0, r0 = flips.rowData[0], ref.flips.iloc[0]
    assert f0["open"] == f"/samples/run-b?baseline=run-a&task={r0.task}&sample={r0.task}%23{r0.doc_id}"
    forest = _node(page, "cmp-forest").figure
    headline = [f"{r['scope']} · {r['metric']}" for r in grid.rowData if r["scope"].startswith("[") or r["scope"] == "arc_easy"]
    assert list(forest.layout.yaxis.ticktext) == headline
    np.testing.assert_allclose(forest.data[0].x, [r["delta"] for r in grid.rowData if r["scope"] in ("[mmlu]", "arc_easy")])
    page = pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=bh&subjects=1")
    forest = _node(page, "cmp-forest").figure
    assert list(forest.layout.yaxis.ticktext) == [f"{r['scope']} · {r['metric']}" for r in grid.rowData]
    assert "unknown correction" in _text(pages.page_for(data, "/compare", "?runs=run-a,run-b&correction=x"))
    assert "at least two runs" in _text(pages.page_for(data, "/compare", "?runs=run-a"))


def test_forest_plot_gives_each_candidate_its_colour_and_offset(dash_app):
    page = pages.page_for(dash_app.workbench_data, "/compare", "?runs=run-a,run-b,run-xss")
    forest = _node(page, "cmp-forest").figure
    labels = pages.run_labels([dash_app.workbench_data.run(r) for r in ("run-a", "run-b", "run-xss")])
    assert [t.name for t in forest.data] == [labels["run-b"], labels["run-xss"]]
    assert labels["run-xss"].endswith(" · run-xss")  # same model and minute as run-a: the id tells them apart
    assert forest.data[0].marker.color != forest.data[1].marker.color and forest.layout.showlegend
    y0, y1 = np.asarray(forest.data[0].y), np.asarray(forest.data[1].y)
    np.testing.assert_allclose(y1 - y0, 0.35)
    np.testing.assert_allclose((y0 + y1) / 2, np.arange(len(y0)))


def test_comparison_uses_the_metric_direction(dash_app):
    """XSTest's over_refusal is lower-is-better: a drop is shown as better, an item going 0 -> 1 as right→wrong."""
    data = dash_app.workbench_data
    page = pages.page_for(data, "/compare", "?runs=run-safe-a,run-safe-b")
    row = _node(page, "cmp-grid").rowData[0]
    assert row["metric"] == "over_refusal ↓" and row["direction"] == "lower"
    assert row["better"] == (None if row["delta"] == 0 else row["delta"] < 0)
    a, b = data.samples("run-safe-a"), data.samples("run-safe-b")
    flips = {(f["doc_id"], f["direction"]) for f in _node(page, "cmp-flips").rowData}
    want = {(int(d), "right→wrong" if vb > va else "wrong→right")
            for d, va, vb in zip(a.doc_id, a.over_refusal, b.over_refusal) if va == va and vb == vb and va != vb}
    assert flips == want and want
    states = data.flips("run-safe-b", "run-safe-a")
    assert {(int(k.split("#")[1]), v) for k, v in states.items() if v != "same"} == want


def test_flip_status_agrees_with_compare_flipped_items(dash_app):
    data = dash_app.workbench_data
    ref = compare_runs([data.run("run-a"), data.run("run-b")], n_boot=100).flips
    states = flip_states(data.samples("run-b"), data.samples("run-a"), data.run("run-b").manifest)
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


def test_correct_only_for_correctness_metrics(dash_app):
    """A refusal-rate task has no "correct": its rows show the metric (with direction) and the score."""
    data = dash_app.workbench_data
    rows, _ = pages.samples_grid_rows(data, "run-safe-a", None, None, None, None)
    df = data.samples("run-safe-a")
    assert {r["correct"] for r in rows} == {"–"} and {r["metric"] for r in rows} == {"over_refusal ↓"}
    assert [r["score"] for r in rows] == [None if v != v else v for v in df.over_refusal]
    arc, _ = pages.samples_grid_rows(data, "run-a", None, ["arc_easy"], None, None)
    assert {r["metric"] for r in arc} == {"acc ↑"} and {r["correct"] for r in arc} <= {"yes", "no"}


def test_sample_detail_holds_the_stored_loglikelihoods(dash_app, dash_env):
    data = dash_app.workbench_data
    df = data.samples("run-a")
    r = df.iloc[3]
    d = sample_detail(df, f"{r['task']}#{r['doc_id']}", data.run("run-a").manifest)
    assert d["prompt"] == r["prompt"]
    np.testing.assert_allclose([c["loglikelihood"] for c in d["choices"]], r["loglikelihoods"])
    assert [c["predicted"] for c in d["choices"]].index(True) == int(r["prediction"])
    assert d["scores"]["acc"] == r["acc"] and d["primary"] == "acc" and d["directions"]["acc"] == "higher"
    panel = pages.detail_panel(data, "run-a", dash_env.linked_key)
    assert {"detail-prompt", "detail-choices", "detail-artifacts", "detail-answer"} <= _ids(panel)
    links = {n.href for n in walk(panel) if isinstance(n, dcc.Link)}
    assert links == {f"/artifacts/{dash_env.ids['attention']}", f"/artifacts/{dash_env.ids['logit_lens']}"}
    grid = sample_rows(df, data.run("run-a").manifest, linked=data.linked_artifacts("run-a"))
    assert {r["key"]: r["artifacts"] for r in grid if r["artifacts"]} == {dash_env.linked_key: 2}


def test_baseline_answer_beside_the_runs(dash_app, dash_env):
    data = dash_app.workbench_data
    rows, _ = pages.samples_grid_rows(data, "run-b", "run-a", None, None, None)
    a = {f"{t}#{d}": answer_text(r) for t, d, r in zip(data.samples("run-a").task, data.samples("run-a").doc_id,
                                                        data.samples("run-a").to_dict("records"))}
    assert [r["baseline_answer"] for r in rows] == [one_line(a[r["key"]]) for r in rows]
    assert "baseline_answer" in {c["field"] for c in pages.sample_columns(True)}
    assert "baseline_answer" not in {c["field"] for c in pages.sample_columns(False)}
    panel = pages.detail_panel(data, "run-b", dash_env.linked_key, "run-a")
    assert {"detail-answer", "baseline-answer", "detail-baseline", "baseline-scores"} <= _ids(panel)
    assert _text(_node(panel, "baseline-answer")) == repr(a[dash_env.linked_key])
    assert "baseline picked" in _text(_node(panel, "detail-choices"))


def test_generation_is_shown_once_and_long_text_is_clipped(dash_app, dash_env):
    data = dash_app.workbench_data
    panel = pages.detail_panel(data, "run-xss", dash_env.hostile["xss"])
    assert "detail-generation" in _ids(panel) and "detail-answer" not in _ids(panel)
    for key, full in ((dash_env.hostile["long"], dash_env.long_answer), (dash_env.hostile["tall"], dash_env.tall_answer)):
        panel = pages.detail_panel(data, "run-xss", key)
        head = _node(panel, "detail-generation").children
        assert len(head) <= pages._TEXT_CHARS + 2 and head.count("\n") <= pages._TEXT_LINES
        assert _node(panel, "detail-generation-full").children == full
        assert f"{len(full):,} characters" in _node(panel, "detail-generation-more").children


def test_bidi_controls_are_shown_not_obeyed(dash_app, dash_env):
    data = dash_app.workbench_data
    rows, _ = pages.samples_grid_rows(data, "run-xss", None, None, None, None)
    cell = next(r for r in rows if r["key"] == dash_env.hostile["bidi"])["answer"]
    assert cell == "Invoice \\u202egpj.exe\\u202c done" and "\u202e" not in cell
    panel = pages.detail_panel(data, "run-xss", dash_env.hostile["bidi"])
    assert "\u202e" not in _text(panel) and "\\u202e" in _node(panel, "detail-prompt").children
    assert dash_env.bidi in data.samples("run-xss").generation.tolist()  # the stored text is untouched


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


def test_artifacts_page_lists_what_it_could_not_read(dash_app, dash_env):
    page = pages.page_for(dash_app.workbench_data, "/artifacts", "")
    assert page.id == "page-artifacts"
    note = _text(_node(page, "artifacts-unreadable"))
    assert "Could not read 2 artifacts" in note and all(str(dash_env.artifacts / n) in note for n in dash_env.bad_artifacts)
    assert "names another id (None)" in note and "manifest.json" in note
    table = _node(page, "artifact-table")
    assert dash_env.odd_artifact in _text(table) and "{'when': [2026, 1, 1]}" in _text(table)
    assert set(dash_env.ids.values()) <= set(_text(table).split())
    odd = pages.page_for(dash_app.workbench_data, f"/artifacts/{dash_env.odd_artifact}", "")
    assert odd.id == "page-artifact-attention" and "artifact-source-link" not in _ids(odd)
    assert dash_app.workbench_data.linked_artifacts("run-a")  # the string `source` did not break the lookup


EXPECTED_IDS = {"attention": {"attn-layer", "attn-head", "attn-pattern", "attn-overview"},
                "patching": {"patch-exact-resid_pre", "patch-atp-resid_pre", "patch-exact-head"},
                "probe": {"probe-accuracy"}, "attribution": {"attr-ig", "attr-gxi", "attr-bars"},
                "logit_lens": {"lens-table-0", "lens-target"}, "drift": {"drift-cosine", "drift-error"},
                "trace": {"trace-fact", "trace-state", "trace-mlp", "trace-attn", "trace-avg-state", "trace-avg-mlp",
                          "trace-avg-attn"},
                "circuit": {"circuit-method", "circuit-k", "circuit-ks", "circuit-graph", "circuit-faithfulness"}}


def test_every_registered_artifact_kind_has_a_view():
    from workbench.dashboard.views import views

    assert set(artifacts.kinds()) <= set(views())


@pytest.mark.parametrize("kind", sorted(EXPECTED_IDS))
def test_every_artifact_kind_has_a_view(dash_app, dash_env, kind):
    aid = dash_env.ids[kind]
    page = pages.page_for(dash_app.workbench_data, f"/artifacts/{aid}", "")
    assert page.id == f"page-artifact-{kind}", page.children
    assert EXPECTED_IDS[kind] <= _ids(page)
    r = artifacts.load(aid, dash_env.artifacts)
    if kind == "probe":
        fig = next(n for n in walk(page) if getattr(n, "id", None) == "probe-accuracy").figure
        np.testing.assert_allclose(fig.data[0].y, r.by_layer["accuracy"])
        np.testing.assert_allclose(fig.data[1].y, r.by_layer["control_accuracy"])
        assert [s.y0 for s in fig.layout.shapes] == [r.text_baseline["accuracy"]]   # the text-only baseline line
    if kind == "attribution":
        spans = next(n for n in walk(page) if getattr(n, "id", None) == "attr-ig").children
        assert [s.children for s in spans] == r.meta.tokens[0][: len(r.ig)]
        strongest = int(np.argmax(np.abs(r.ig)))
        assert spans[strongest].style["backgroundColor"].endswith(",0.850)")
    if kind == "patching":  # normalised recovery on the colour scale, the raw patched metric in the hover
        fig = next(n for n in walk(page) if getattr(n, "id", None) == "patch-exact-resid_pre").figure
        np.testing.assert_allclose(fig.data[0].z, r.effect("resid_pre"), rtol=1e-6)
        np.testing.assert_allclose(fig.data[0].customdata, r.exact_resid_pre)
        assert fig.data[0].zmid == 0 and fig.data[0].zmax >= 1
        line = next(n for n in walk(page) if getattr(n, "id", None) == "patch-exact-mlp_out").figure
        np.testing.assert_allclose(line.data[0].y, r.effect("mlp_out"), rtol=1e-6)
    if kind == "logit_lens":  # target probability by layer as a line per position, its rank below
        fig = next(n for n in walk(page) if getattr(n, "id", None) == "lens-target").figure
        probs = [t for t in fig.data if t.showlegend is not False]
        np.testing.assert_allclose(np.stack([t.y for t in probs], axis=1), r.target_prob)
        ranks = [t for t in fig.data if t.showlegend is False]
        np.testing.assert_allclose(np.stack([t.y for t in ranks], axis=1), r.target_rank + 1)
        hits = [n for n in walk(page) if isinstance(n, html.Td) and getattr(n, "className", None) == "target"]
        assert len(hits) == int((r.top["token_id"] == r.target_id).sum()) > 0
    if kind == "trace":
        fig = next(n for n in walk(page) if getattr(n, "id", None) == "trace-state").figure
        np.testing.assert_allclose(fig.data[0].z, r.grid("state", 0).T)
        assert "&lt;" in fig.data[0].y[0] and not any("<" in y for y in fig.data[0].y)  # model text escaped
        avg = next(n for n in walk(page) if getattr(n, "id", None) == "trace-avg-mlp").figure
        np.testing.assert_allclose(avg.data[0].z, r.average("mlp").T)
    if kind == "circuit":
        curve = next(n for n in walk(page) if getattr(n, "id", None) == "circuit-faithfulness").figure
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
    links = {n.href for n in walk(html.Div(pages.artifact_links(data, "run-b", key))) if isinstance(n, dcc.Link)}
    assert links == {f"/artifacts/{job.artifact_id}"}
    status = pages.job_status(job)
    assert status[1].href == f"/artifacts/{job.artifact_id}"


def test_quantized_run_jobs_run_on_the_unquantized_weights(dash_app, tiny_model_dir):
    """An int8 run offers jobs on the same checkpoint unquantized and says so (panel and artifact); a run on an
    OpenAI server, whose weights are not here, offers none and says why."""
    data = dash_app.workbench_data
    df = data.samples("run-int8")
    key = f"mmlu_anatomy#{df[df.task == 'mmlu_anatomy'].iloc[1]['doc_id']}"
    box = pages.job_box(data, "run-int8", key)
    spec_b = data.run("run-b").manifest["model"]["spec"]
    assert _node(box, "job-model").children == spec_b and "unquantized" in _node(box, "job-weights-note").children
    job = _wait(data.jobs, data.jobs.submit("logit_lens", "run-int8", key, data.run("run-int8").manifest["model"]["spec"]).id)
    assert job.status == "done", job.error
    m = artifacts.read_manifest(job.artifact_id, data.artifacts_root)
    assert m["model"]["spec"] == spec_b and m["params"]["run_model"] == "int8:" + spec_b.partition(":")[2]
    assert "unquantized" in m["params"]["weights"]
    page = pages.page_for(data, f"/artifacts/{job.artifact_id}", "")
    assert "unquantized" in _text(_node(page, "artifact-weights"))
    box = pages.job_box(data, "run-openai", key)
    assert "job-create" not in _ids(box) and "torch weights" in _node(box, "job-unavailable").children


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
