"""`workbench compare` end to end on runs the real harness produced with two tiny random models."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import build_tiny_model, derive_run
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from workbench.analysis.compare import ComparisonError, compare_runs, load_runs, match_items
from workbench.analysis.report import SECTIONS, write_report
from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore

TASKS = ["mmlu_anatomy", "arc_easy"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, fixture_mirror):
    """Store with: A (tiny model, seed 0), B (another tiny model, seed 1), A2 (A rerun), A4 (A with --limit 4)."""
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-llama-1"), seed=1)
    store = RunStore(tmp_path_factory.mktemp("store"))

    def ev(model, run_id, limit=None):
        req = EvalRequest(model=f"hf:{model}", tasks=TASKS, data_dir=str(fixture_mirror), limit=limit)
        return run_eval(req, store=store, run_id=run_id, progress=False)

    return store, {"A": ev(tiny_model_dir, "run-a"), "B": ev(other, "run-b"), "A2": ev(tiny_model_dir, "run-a2"),
                   "A4": ev(tiny_model_dir, "run-a4", limit=4)}


def _copy_run(store: RunStore, src: str, dst: str, edit) -> None:
    """A copy of a stored run with its samples edited (metrics recomputed by the harness's own function)."""
    derive_run(store, src, dst, edit)


def test_paired_stats_match_statsmodels_on_real_runs(runs):
    store, r = runs
    c = compare_runs([r["A"], r["B"]], n_boot=500)
    a = r["A"].samples.set_index(["task", "doc_id"])
    b = r["B"].samples.set_index(["task", "doc_id"])
    total_disc = 0
    for task in TASKS:
        row = next(p for p in c.paired if p.scope.kind == "task" and p.scope.name == task and p.metric == "acc")
        x, y = a.loc[task, "acc"], b.loc[task, "acc"].loc[a.loc[task].index]
        n10, n01 = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
        n11, n00 = int(((x == 1) & (y == 1)).sum()), int(((x == 0) & (y == 0)).sum())
        assert row.stats.n == len(x) == r["A"].metrics["tasks"][task]["acc"]["n"]
        assert row.stats.delta == pytest.approx(r["B"].metrics["tasks"][task]["acc"]["value"]
                                                - r["A"].metrics["tasks"][task]["acc"]["value"])
        assert row.stats.p_value == pytest.approx(mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue)
        assert (row.stats.n_a_only, row.stats.n_b_only) == (n10, n01)
        assert row.stats.ci95_low <= row.stats.delta <= row.stats.ci95_high
        flips = c.flips[c.flips.task == task]
        assert (flips.direction == "right→wrong").sum() == n10 and (flips.direction == "wrong→right").sum() == n01
        total_disc += n01 + n10
    assert total_disc > 0, "the two tiny models should disagree somewhere, else this test checks nothing"
    group = next(p for p in c.paired if p.scope.kind == "group" and p.metric == "acc")
    assert group.scope.name == "mmlu" and group.stats.n == r["A"].metrics["groups"]["mmlu"]["acc"]["n"]
    headline = [p for p in c.paired if p.metric == "acc" and p.scope.name in ("mmlu", "arc_easy")]
    assert len(headline) == 2
    np.testing.assert_allclose([p.p_adjusted for p in headline],
                               multipletests([p.stats.p_value for p in headline], method="holm")[1])
    subject = next(p for p in c.paired if p.metric == "acc" and p.scope.name == "mmlu_anatomy")
    assert subject.p_adjusted == subject.stats.p_value  # the only subject of its group: a family of one


def test_flips_carry_prompts_and_answers(runs):
    _, r = runs
    c = compare_runs([r["A"], r["B"]], n_boot=200)
    assert not c.flips.empty
    f = c.flips.iloc[0]
    src = r["A"].samples.set_index(["task", "doc_id"]).loc[(f.task, f.doc_id)]
    assert f.prompt == src.prompt and f.target == src.target_text
    assert f.answer_baseline == src.choices[int(src.prediction)]


def test_identical_rerun_has_zero_delta_and_three_way_comparison(runs):
    _, r = runs
    c = compare_runs([r["A"], r["B"], r["A2"]], n_boot=200)
    rerun = [p for p in c.paired if p.candidate == "run-a2"]
    assert rerun and all(p.stats.delta == 0 and p.stats.p_value == 1 for p in rerun)
    assert {p.candidate for p in c.paired} == {"run-b", "run-a2"}
    assert not (c.flips.candidate == "run-a2").any()
    assert len(c.leaderboard) == 3 * 2  # three runs x (mmlu group, arc_easy)


def test_manifest_diff_names_the_model(runs):
    _, r = runs
    fields = dict(compare_runs([r["A"], r["B"]], n_boot=100).manifest_diff)
    assert "model.sha256" in fields and fields["model.sha256"][0] != fields["model.sha256"][1]
    assert "created" not in fields and not any(k.startswith("timings") for k in fields)
    assert "model.sha256" not in dict(compare_runs([r["A"], r["A2"]], n_boot=100).manifest_diff)


def test_different_limits_are_an_error_naming_the_items(runs):
    _, r = runs
    with pytest.raises(ComparisonError, match=r"only in run-a \(.*(arc_easy|mmlu_anatomy)#\d+"):
        compare_runs([r["A"], r["A4"]])


def test_changed_prompt_and_dropped_item_are_named(runs):
    store, r = runs

    def change_prompt(df):
        df.loc[(df.task == "arc_easy") & (df.doc_id == df.doc_id[df.task == "arc_easy"].max()), "prompt_hash"] = "0" * 64
        return df

    def drop_item(df):
        return df[~((df.task == "mmlu_anatomy") & (df.doc_id == 3))].reset_index(drop=True)

    _copy_run(store, "run-a", "run-a-prompt", change_prompt)
    _copy_run(store, "run-a", "run-a-drop", drop_item)
    last = int(r["A"].samples.query("task == 'arc_easy'").doc_id.max())
    with pytest.raises(ComparisonError, match=rf"1 with different prompts \(arc_easy#{last}\)"):
        compare_runs(load_runs(["run-a", "run-a-prompt"], store.root))
    with pytest.raises(ComparisonError, match=r"1 only in run-a \(mmlu_anatomy#3\)"):
        match_items({"run-a": r["A"].samples, "run-a-drop": store.load("run-a-drop").samples})


def test_report_is_self_contained_with_sections(runs, tmp_path):
    _, r = runs
    c = compare_runs([r["A"], r["B"]], n_boot=200)
    paths = write_report(c, tmp_path / "reports")
    page = paths.html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?https?://", page, re.I)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js is inlined
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    first = c.flips.iloc[0]
    assert f"{first.task}#{first.doc_id}" in page
    md = paths.markdown.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"## {section}" in md
    assert "run-a" in md and "run-b" in md and "model.sha256" in md


@pytest.mark.slow
def test_cli_compare_json_and_errors(runs, run_cli, tmp_path):
    store, r = runs
    res = run_cli("compare", "run-a", "run-b", "--store", str(store.root), "--out", str(tmp_path / "out"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["baseline"] == "run-a" and data["correction"] == "holm"
    tasks = {(p["name"], p["metric"]) for p in data["paired"]}
    assert {("arc_easy", "acc"), ("mmlu_anatomy", "acc"), ("mmlu", "acc")} <= tasks
    assert all(set(p) >= {"delta", "ci95_low", "ci95_high", "p_value", "p_adjusted", "mdd", "test"} for p in data["paired"])
    assert (tmp_path / "out").is_dir() and len(list((tmp_path / "out").glob("*.html"))) == 1
    bad = run_cli("compare", "run-a", "run-a4", "--store", str(store.root), "--out", str(tmp_path / "o2"))
    assert bad.returncode == 2 and bad.stderr.startswith("workbench: error: runs run-a and run-a4 do not cover")
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = run_cli("compare", "run-a", "nope", "--store", str(store.root))
    assert missing.returncode == 2 and "no run nope" in missing.stderr


def test_runs_scored_under_other_settings_are_not_paired_silently(tiny_model_dir, fixture_mirror, tmp_path, run_cli):
    """Same model, same items, another sandbox timeout: a score difference would not be a model difference."""
    store = RunStore(tmp_path / "runs")

    def ev(run_id, **scoring):
        req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=["humaneval", "arc_easy"], data_dir=str(fixture_mirror),
                          limit=1, **scoring)
        return run_eval(req, store=store, run_id=run_id, progress=False)

    a, b, c = ev("t10"), ev("t3", sandbox_timeout_s=3), ev("judge", refusal_judge="model")
    assert a.manifest["scoring"]["sandbox_timeout_s"] == 10.0 and b.manifest["scoring"]["sandbox_timeout_s"] == 3.0
    assert b.manifest["tasks"]["humaneval"]["scoring"] == {"sandbox_timeout_s": 3.0, "sandbox_memory_mb": 1024}
    assert b.manifest["tasks"]["arc_easy"]["scoring"] == {}
    with pytest.raises(ComparisonError, match=r"humaneval: sandbox_timeout_s: 10.0 vs 3.0.*--allow-config-diff"):
        compare_runs([a, b])
    # The refusal judge does not score HumanEval or ARC: runs that differ only there compare cleanly.
    assert compare_runs([a, c]).config_diff == []
    allowed = compare_runs([a, b], allow_config_diff=True)
    assert allowed.config_diff == [("humaneval: sandbox_timeout_s", [10.0, 3.0])]
    paths = write_report(allowed, tmp_path / "out")
    assert "Scored under different settings" in paths.html.read_text() and "humaneval: sandbox_timeout_s" in \
        paths.markdown.read_text()
    r = run_cli("gate", "--baseline", "t10", "--candidate", "t3", "--store", str(store.root))
    assert r.returncode == 2 and "scored under different settings" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli("compare", "t10", "t3", "--store", str(store.root), "--out", str(tmp_path / "o2"), "--allow-config-diff")
    assert r.returncode == 0, r.stderr
