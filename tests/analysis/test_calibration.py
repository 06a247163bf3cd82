"""Calibration through the whole pipeline on real harness runs (tiny model, real benchmark data):
per-sample columns, ECE/Brier/selective accuracy in metrics.json, paired comparison with the same
corrections, the gate on ECE, and the report's calibration section."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import derive_run
from statsmodels.stats.multitest import multipletests

from workbench.analysis.calibration import calibration_rows
from workbench.analysis.compare import compare_runs
from workbench.analysis.gate import evaluate_gate, parse_policy
from workbench.analysis.report import write_report
from workbench.eval.harness import EvalRequest, run_eval
from workbench.scoring.aggregates import calibration as cal
from workbench.store import RunStore
from workbench.store.samples import order_metrics

TASKS = ["mmlu_anatomy", "arc_easy", "truthfulqa_mc2"]
SEL = "selective_acc@0.5"


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_dir, real_data_dir):
    """base, rerun (same request) and `calibrated`: base with each task's confidences set to its accuracy
    (the random tiny model is badly overconfident; this copy has ECE 0 and the same answers)."""
    st = RunStore(tmp_path_factory.mktemp("calibration-store"))
    for run_id in ("base", "rerun"):
        req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=TASKS, data_dir=str(real_data_dir), limit=30)
        run_eval(req, store=st, run_id=run_id, progress=False)

    def calibrated(df):
        df = df.copy()
        has = df["confidence"].notna()
        df.loc[has, "confidence"] = df[has].groupby("task")["acc"].transform("mean")
        return df

    derive_run(st, "base", "calibrated", calibrated)
    return st


def test_harness_writes_confidence_and_brier_where_acc_is_the_argmax(store):
    run = store.load("base")
    df = run.samples
    mc = df[df.task != "truthfulqa_mc2"]
    assert mc["confidence"].notna().all() and mc["brier"].notna().all()
    for _, row in mc.iterrows():
        p = cal.choice_probabilities(row["loglikelihoods"])
        assert row["confidence"] == pytest.approx(p.max())
        gold = int(row["target"])
        assert row["acc"] == float(int(np.argmax(row["loglikelihoods"])) == gold)
        assert row["brier"] == pytest.approx((p.max() - row["acc"]) ** 2)
    # MC2's `acc` is the true answers' probability mass, not the argmax's correctness: no calibration
    assert df.loc[df.task == "truthfulqa_mc2", "confidence"].isna().all()
    m = run.metrics["tasks"]
    for task in ("mmlu_anatomy", "arc_easy"):
        part = df[df.task == task]
        assert m[task]["ece"]["value"] == pytest.approx(cal.ece(part["confidence"], part["acc"])[0])
        assert m[task][SEL]["value"] == pytest.approx(cal.selective_accuracy(part["confidence"], part["acc"])[0])
        assert m[task]["brier"]["value"] == pytest.approx(part["brier"].mean())
        for name in ("ece", "brier", SEL):
            e = m[task][name]
            assert e["n"] == len(part) and e["ci95_low"] <= e["value"] <= e["ci95_high"]
        assert order_metrics(m[task], run.manifest["tasks"][task]["primary_metric"])[0] == "acc"
        assert "confidence" not in m[task]  # a description of the answer, not a score with a direction
    assert "ece" not in m["truthfulqa_mc2"] and "brier" not in m["truthfulqa_mc2"]
    assert run.manifest["tasks"]["arc_easy"]["directions"].get("acc") == "higher"


def test_compare_pairs_calibration_under_the_same_corrections(store):
    base, over = store.load("base"), store.load("calibrated")
    c = compare_runs([base, over], n_boot=300)
    rows = {(p.scope.name, p.metric): p for p in c.paired}
    for task in ("arc_easy", "mmlu_anatomy"):
        p = rows[(task, "ece")]
        a, b = base.samples, over.samples
        ea = cal.ece(a.loc[a.task == task, "confidence"], a.loc[a.task == task, "acc"])[0]
        eb = cal.ece(b.loc[b.task == task, "confidence"], b.loc[b.task == task, "acc"])[0]
        assert p.stats.test == "permutation-swap" and p.stats.delta == pytest.approx(eb - ea)
        assert eb == pytest.approx(0.0, abs=1e-12) and ea > 0.1
        assert p.stats.p_value < 0.01 and p.stats.ci95_high < 0
        assert not p.primary and rows[(task, "acc")].primary  # acc stays the headline metric
        assert rows[(task, "acc")].stats.delta == 0
    # corrections: per metric, across the headline rows, exactly as for the per-sample metrics
    family = [p for p in c.paired if p.metric == "ece" and (p.scope.kind == "group" or p.scope.group is None)]
    expected = multipletests([p.stats.p_value for p in family], method="holm")[1]
    assert [p.p_adjusted for p in family] == pytest.approx(list(expected))
    assert c.flips.empty  # no item changed its answer
    assert not any(p.metric == "confidence" for p in c.paired)


def test_gate_on_ece_fails_a_less_calibrated_candidate(store):
    policy = parse_policy({"tasks": {"arc_easy": {"metric": "ece", "max_drop": 0.05}}})
    bad = evaluate_gate(store.load("calibrated"), store.load("base"), policy, n_boot=200)
    by = {ch.name: ch for ch in bad.checks}
    assert by["arc_easy"].status == "regression" and by["arc_easy"].metric == "ece"  # ECE up = worse
    assert all(ch.status == "pass" for ch in bad.checks if ch.name != "arc_easy")  # same answers elsewhere
    ok = evaluate_gate(store.load("base"), store.load("rerun"), policy, n_boot=200)
    assert ok.exit_code == 0, [(ch.name, ch.reason) for ch in ok.checks]


def test_report_shows_calibration_and_reliability_diagrams(store, tmp_path):
    c = compare_runs([store.load("base"), store.load("calibrated")], n_boot=200)
    rows = calibration_rows(c, n_boot=200)
    assert {(r.run_id, r.scope.name) for r in rows} == {(rid, t) for rid in ("base", "calibrated")
                                                        for t in ("mmlu", "arc_easy")}
    for r in rows:
        assert sum(b["n"] for b in r.bins) == r.estimates["ece"].n
    fixed = next(r for r in rows if r.run_id == "calibrated" and r.scope.name == "arc_easy")
    assert fixed.estimates["confidence"].value == pytest.approx(fixed.estimates["acc"].value)
    assert fixed.estimates["ece"].value == pytest.approx(0.0, abs=1e-12)
    paths = write_report(c, tmp_path, calibration=rows)
    page, md = paths.html.read_text(encoding="utf-8"), paths.markdown.read_text(encoding="utf-8")
    assert "<h2>Calibration</h2>" in page and "mean confidence (equal-mass bins)" in page
    assert "ece (lower is better)" in md and "brier (lower is better)" in md
    assert "No contamination result given" in md


@pytest.mark.slow
def test_smollm2_calibration_and_min_k_prob_on_real_items(smollm2_checkpoint, real_data_dir, tmp_path):
    """SmolLM2 on 12 ARC-Easy items: the stored confidence is the softmax of its choice log-likelihoods,
    the run's ECE is HELM's package's on those confidences; a contamination scan of the same run with
    the model scores each item's Min-K% Prob, whose AUROC against labels is sklearn's."""
    import calibration as helm_cal
    from sklearn.metrics import roc_auc_score

    from workbench.eval.contamination import ContaminationRequest, run_contamination

    st = RunStore(tmp_path / "runs")
    model = f"hf:{smollm2_checkpoint}"
    run = run_eval(EvalRequest(model=model, tasks=["arc_easy"], data_dir=str(real_data_dir), limit=12),
                   store=st, run_id="smol", progress=False)
    df = run.samples
    probs = [cal.choice_probabilities(ll) for ll in df["loglikelihoods"]]
    assert df["confidence"].to_numpy() == pytest.approx([p.max() for p in probs])
    assert df["acc"].tolist() == [float(int(np.argmax(p)) == int(t)) for p, t in zip(probs, df["target"])]
    ece = run.metrics["tasks"]["arc_easy"]["ece"]["value"]
    assert ece == pytest.approx(helm_cal.get_ece_em(df["confidence"].to_numpy(), df["acc"].to_numpy().astype(int),
                                                    num_bins=10), abs=1e-12)
    corpus = tmp_path / "page.txt"
    corpus.write_text("An unrelated page about the weather, the committee and a long Tuesday afternoon.\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("task,doc_id,member\n" + "".join(f"arc_easy,{d},{int(i % 2)}\n"
                                                        for i, d in enumerate(df["doc_id"])))
    result = run_contamination(ContaminationRequest(corpus=[str(corpus)], run="smol", model=model, labels=str(labels),
                                                    data_dir=str(real_data_dir)), store=st.root, progress=False)
    items = result.items
    assert items["mink_prob"].notna().all() and (items["mink_prob"] < 0).all()
    assert result.manifest["membership"]["auroc_mink_prob"]["value"] == pytest.approx(
        roc_auc_score(items["member"].astype(int), items["mink_prob"]))
