"""The compare page's calibration section: reliability diagrams and the calibration table, the same
numbers as workbench.analysis.calibration, on runs of two tiny random models."""
from __future__ import annotations

import pytest
from conftest import build_tiny_model

from dashboard.components import walk
from workbench.analysis.calibration import calibration_rows
from workbench.analysis.compare import compare_runs
from workbench.dashboard import pages
from workbench.dashboard.data import DashboardData
from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model_dir, fixture_mirror):
    root = tmp_path_factory.mktemp("dash-calibration")
    store = RunStore(root / "runs")
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-llama-2"), seed=2)
    for model, rid in ((tiny_model_dir, "run-a"), (other, "run-b")):
        run_eval(EvalRequest(model=f"hf:{model}", tasks=["mmlu_anatomy", "arc_easy"], data_dir=str(fixture_mirror)),
                 store=store, run_id=rid, progress=False)
    return DashboardData(store.root, root / "artifacts")


def test_compare_page_draws_reliability_diagrams(data):
    page = pages.page_for(data, "/compare", "?runs=run-a,run-b")
    nodes = {n.id: n for n in walk(page) if isinstance(getattr(n, "id", None), str)}
    assert {"cmp-grid", "cmp-calibration", "cmp-reliability"} <= set(nodes)
    ref = calibration_rows(compare_runs([data.run("run-a"), data.run("run-b")]), n_boot=200)
    grid = nodes["cmp-calibration"].rowData
    assert [(g["run"], g["scope"]) for g in grid] == [(r.run_id, f"[{r.scope.name}]" if r.scope.kind == "group"
                                                       else r.scope.name) for r in ref]
    for g, r in zip(grid, ref):
        assert g["ece ↓"] == pytest.approx(r.estimates["ece"].value, abs=1e-3)
        assert g["brier ↓"] == pytest.approx(r.estimates["brier"].value, abs=1e-3)
    fig = nodes["cmp-reliability"].figure
    curves = [t for t in fig.data if t.name]          # one per run and scope; the diagonals have no name
    assert len(curves) == len(ref)
    for t, r in zip(curves, ref):
        assert list(t.x) == pytest.approx([b["confidence"] for b in r.bins])
        assert list(t.y) == pytest.approx([b["accuracy"] for b in r.bins])
