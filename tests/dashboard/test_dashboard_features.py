"""The feature browser and the sample panel's top features, on artifacts made by the real corpus tools on
the tiny model (its corpus includes hostile text, which must reach the page as text)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dash import dcc, html

from dashboard.components import walk
from workbench.dashboard import pages
from workbench.interp import artifacts
from workbench.interp.units import search_units

XSS = '<script>window.__xss=1</script><img src=x onerror="alert(1)">'


@dataclass
class Env:
    store: Path
    arts: Path
    ids: dict[str, str]


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model_dir) -> Env:
    from workbench.interp import collect, features, neurons, sae, top_units
    from workbench.interp.hooks import load_hooked
    from workbench.interp.sources import from_run
    from workbench.store import RunStore

    root = tmp_path_factory.mktemp("dash-features")
    text = root / "corpus.txt"
    text.write_text("\n\n".join([f"The heart pumps blood {XSS} number {i}. The quick brown fox jumps." for i in range(30)]))
    acts, arts = root / "acts", root / "arts"
    model = load_hooked(f"hf:{tiny_model_dir}")
    c = collect.run(model, layers=[1], sites=["resid_post", "mlp_neurons"], corpus=str(text), split="all", tokens=2000,
                    shard_tokens=600, activations=acts, progress=False)
    ids = {"activations": artifacts.save(c, arts)}
    ids["neurons"] = artifacts.save(neurons.run(model, layer=1, corpus=c.corpus_id, top=4, activations=acts), arts)
    ids["sae"] = artifacts.save(sae.run(model, layer=1, corpus=c.corpus_id, expansion=2, k=4, epochs=2, batch_tokens=128,
                                        eval_tokens=0, activations=acts, progress=False), arts)
    ids["features"] = artifacts.save(features.run(model, sae=ids["sae"], top=4, artifacts=arts, activations=acts), arts)
    store = RunStore(root / "runs")
    run = store.create("run-1", {"model": {"spec": f"hf:{tiny_model_dir}"}, "tasks": {"toy": {}}})
    store.publish(run, pd.DataFrame({"task": ["toy"], "doc_id": [0], "prompt": ["Which organ pumps blood? The"],
                                     "target_text": [" heart"], "choices": [[" heart", " lung"]],
                                     "loglikelihoods": [[-1.0, -2.0]], "prediction": ["0"], "acc": [1.0]}), {"tasks": {}})
    src = from_run("run-1", "0", store=store.root)
    ids["top_units"] = artifacts.save(top_units.run(model, src.prompt, layers=[1], saes=[ids["sae"]], answer=" heart",
                                                    artifacts=arts, source=src.link()), arts)
    return Env(store.root, arts, ids)


@pytest.fixture(scope="module")
def app(env):
    from workbench.dashboard import create_app

    return create_app(env.store, env.arts, jobs=False)


def _by_id(node, id_):
    return next(n for n in walk(node) if getattr(n, "id", None) == id_)


@pytest.mark.parametrize("kind", ["activations", "neurons", "sae", "features", "top_units"])
def test_views_of_the_corpus_kinds(app, env, kind):
    page = pages.page_for(app.workbench_data, f"/artifacts/{env.ids[kind]}", "")
    assert page.id == f"page-artifact-{kind}", page.children


@pytest.mark.parametrize("kind", ["neurons", "features"])
def test_feature_browser_shows_a_unit_as_its_artifact_holds_it(app, env, kind):
    r = artifacts.load(env.ids[kind], env.arts)
    unit = int(r.contexts["unit"].iloc[0])
    page = pages.page_for(app.workbench_data, f"/features/{env.ids[kind]}", f"?unit={unit}")
    assert page.id == "page-features"
    assert _by_id(page, "fb-unit-title").children == f"{r.unit_name} #{unit}"
    rows = _by_id(page, "fb-contexts").children
    ctx = r.contexts[r.contexts["unit"] == unit].sort_values("rank")
    assert len(rows) == len(ctx)
    spans = rows[0].children[1].children
    assert [s.children for s in spans] == list(ctx.iloc[0]["tokens"])       # model text as text nodes
    assert all(isinstance(s, html.Span) for s in spans)
    assert "outline" in spans[int(ctx.iloc[0]["center"])].style
    hist = _by_id(page, "fb-histogram").figure
    np.testing.assert_allclose(hist.data[0].y, r.hist[unit])
    promote = _by_id(page, "fb-logits-promote").children[0].children
    lg = r.logits[(r.logits["unit"] == unit) & (r.logits["sign"] == "promote")].sort_values("rank")
    assert [row.children[0].children.children for row in promote] == [repr(t) for t in lg["token"]]


def test_hostile_corpus_text_stays_text(app, env):
    r = artifacts.load(env.ids["neurons"], env.arts)
    hit = r.contexts[r.contexts["tokens"].apply(lambda t: "<" in "".join(t))]
    assert len(hit), "the corpus' markup should appear in some top context"
    page = pages.page_for(app.workbench_data, f"/features/{env.ids['neurons']}", f"?unit={int(hit['unit'].iloc[0])}")
    comps = list(walk(page))
    assert not any(type(c).__name__ in ("Script", "Iframe", "Img") for c in comps)
    assert any(isinstance(getattr(c, "children", None), str) and "<" in c.children for c in comps)


def test_unit_search_by_id_and_by_token(app, env):
    data = app.workbench_data
    r = artifacts.load(env.ids["features"], env.arts)
    assert [x["unit"] for x in search_units(r, "#3")] == [3]
    assert search_units(r, "99999") == []
    tok = r.by_token.iloc[0]
    found = search_units(r, tok["token"].strip() or tok["token"])
    assert found and found[0]["unit"] in set(r.by_token[r.by_token["token_id"] == tok["token_id"]]["unit"])
    none = pages.unit_search_results(data, env.ids["features"], "zzzz-not-a-token")
    assert none.id == "fb-none"
    assert "feature browser shows" in pages.page_for(data, f"/features/{env.ids['sae']}", "").children
    assert "must be a number" in pages.page_for(data, f"/features/{env.ids['features']}", "?unit=x").children


def test_search_callback_through_the_server(app, env):
    client = app.server.test_client()
    r = client.post("/_dash-update-component", json={
        "output": "fb-results.children", "outputs": {"id": "fb-results", "property": "children"},
        "inputs": [{"id": "fb-query", "property": "value", "value": "#2"}],
        "state": [{"id": "artifact-id", "property": "data", "value": env.ids["features"]}],
        "changedPropIds": ["fb-query.value"]})
    assert r.status_code == 200
    assert "?unit=2" in r.get_data(as_text=True)


def test_sample_panel_shows_the_top_features(app, env):
    panel = pages.detail_panel(app.workbench_data, "run-1", "toy#0")
    table = _by_id(panel, "detail-top-units-table")
    r = artifacts.load(env.ids["top_units"], env.arts)
    rows = table.children[1].children
    assert len(rows) == len(r.units)
    links = [n for n in walk(table) if isinstance(n, dcc.Link)]
    assert any(link.href.startswith(f"/features/{env.ids['features']}?unit=") for link in links)
    assert any(link.href.startswith(f"/features/{env.ids['neurons']}?unit=") for link in links)
