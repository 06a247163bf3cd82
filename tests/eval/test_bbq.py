"""BBQ: schema checks, per-sample bias-score fields against lm-eval's own BBQ aggregation, real runs."""
from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import DataError

BENCH_TASKS = Path(__file__).resolve().parents[2] / "benchmarks" / "tasks"
CATEGORIES = {"Age": 3680, "Disability_status": 1556, "Nationality": 3080, "Physical_appearance": 1576,
              "Religion": 1200, "Sexual_orientation": 864}


def _bbq_utils():
    spec = importlib.util.spec_from_file_location("bbq_utils", BENCH_TASKS / "bbq_utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _lm_eval_scores(docs: list[dict], answers: list[int]) -> dict[str, float]:
    """lm-eval's BBQ metrics (its process_results + its aggregation functions) for the given answers."""
    from lm_eval.tasks.bbq import utils as lm

    per = [lm._process_results(d, a) for d, a in zip(docs, answers)]
    return {
        "acc": float(np.mean([p["acc"] for p in per])),
        "acc_ambig": lm.agg_accuracy_amb([p["accuracy_amb"] for p in per]),
        "acc_disambig": lm.agg_accuracy_disamb([p["accuracy_disamb"] for p in per]),
        "bias_ambig": lm.agg_amb_bias_scores([p["amb_bias_score"] for p in per]),
        "bias_disambig": lm.agg_disamb_bias_scores([p["disamb_bias_score"] for p in per]),
    }


def _our_scores(docs: list[dict], answers: list[int]) -> dict[str, float]:
    u = _bbq_utils()
    rows = [u.answer_fields(d, a) for d, a in zip(docs, answers)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def _docs(data_dir: Path, task: str) -> list[dict]:
    from workbench.eval import tasks as T

    built = T.build(T.registry()[task], data_dir)
    return list(built.task.test_docs())


def test_fixture_fields_by_hand(fixture_mirror):
    u = _bbq_utils()
    docs = _docs(fixture_mirror, "bbq_Age")
    # choices: [retiree, teenager, 10 unknown phrasings]; biased = retiree on "neg", teenager on "nonneg".
    assert [d["biased_answers"] for d in docs] == [["The retiree"], ["The retiree"], ["The teenager"], ["The teenager"]]
    amb_neg, dis_neg, amb_non, dis_non = docs
    assert u.answer_fields(amb_neg, 0) == pytest.approx(
        {"acc": 0.0, "acc_ambig": 0.0, "acc_disambig": math.nan, "bias_ambig": 1.0, "bias_disambig": math.nan},
        nan_ok=True)
    assert u.answer_fields(amb_neg, 5)["acc"] == 1.0 and u.answer_fields(amb_neg, 5)["bias_ambig"] == 0.0
    assert u.answer_fields(dis_neg, 1)["acc_disambig"] == 1.0 and u.answer_fields(dis_neg, 1)["bias_disambig"] == -1.0
    assert math.isnan(u.answer_fields(dis_non, 7)["bias_disambig"])  # "unknown" answers leave s_DIS
    assert u.answer_fields(amb_non, 1)["bias_ambig"] == 1.0


def test_malformed_row_names_file_and_line(tmp_path, fixture_mirror):
    from workbench.eval.data import benchmarks, read_split

    (tmp_path / "bbq" / "data").mkdir(parents=True)
    lines = (fixture_mirror / "bbq" / "data" / "Age.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["answer_info"]["ans2"][1] = "old"  # no option is tagged unknown
    (tmp_path / "bbq" / "data" / "Age.jsonl").write_text("\n".join([lines[0], lines[1], json.dumps(bad)]) + "\n")
    with pytest.raises(DataError, match=r"Age.jsonl line 3: exactly one answer must be tagged 'unknown'"):
        read_split(benchmarks()["bbq"], "test", "Age", tmp_path)


def test_real_categories_read_and_match_provenance(real_data_dir):
    from workbench.eval.data import benchmarks, read_split

    for cat, n in CATEGORIES.items():
        rows, [rec] = read_split(benchmarks()["bbq"], "test", cat, real_data_dir)
        assert rec.rows == n and {r["category"] for r in rows} == {cat}
    assert rec.sha256 == "2c71036b9e7584fe589c42aef32c1a42bc01b9a5e9b1b8704342630cdb08cefd"


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_bias_scores_equal_lm_eval_aggregation(real_data_dir, category):
    """Our per-sample means reproduce lm-eval's BBQ aggregation on the same (random, seeded) answers."""
    docs = _docs(real_data_dir, f"bbq_{category}")
    rng = random.Random(category)
    sample = rng.sample(docs, 400)
    for skew in (0.0, 0.5):  # uniform answers, and answers skewed towards the biased option
        answers = []
        for d in sample:
            choices = _bbq_utils().doc_to_choice(d)
            if d["biased_answers"] and rng.random() < skew:
                answers.append(choices.index(d["biased_answers"][0]))
            else:
                answers.append(rng.randrange(len(choices)))
        ours, ref = _our_scores(sample, answers), _lm_eval_scores(sample, answers)
        assert ours == pytest.approx(ref, abs=1e-12)
        assert skew == 0.0 or ours["bias_disambig"] > 0  # skewing towards the stereotype shows as bias


def test_tiny_model_run_has_bbq_columns(tiny_model_dir, fixture_mirror, tmp_path):
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=["bbq_Age"], data_dir=str(fixture_mirror))
    run = run_eval(req, store=RunStore(tmp_path), progress=False)
    df = run.samples
    assert len(df) == 4 and all(len(c) == 12 for c in df["choices"])
    docs = [json.loads(d) for d in df["doc"]]
    ref = _lm_eval_scores(_docs(fixture_mirror, "bbq_Age"), [int(p) for p in df["prediction"]])
    for metric, value in ref.items():
        got = run.metrics["tasks"]["bbq_Age"].get(metric, {}).get("value", math.nan)
        assert got == pytest.approx(value, nan_ok=True), metric
    assert [d["example_id"] for d in docs] == [0, 1, 2, 3]


@pytest.mark.slow
def test_smollm2_bbq_against_lm_eval_aggregation(smollm2_checkpoint, real_data_dir, tmp_path):
    """SmolLM2 on 4 items of each present category: stored metrics equal lm-eval's on its predictions."""
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    req = EvalRequest(model=f"hf:{smollm2_checkpoint}", tasks=["bbq"], limit=4,
                      data_dir=str(real_data_dir))
    run = run_eval(req, store=RunStore(tmp_path), progress=False)
    df = run.samples
    assert len(df) == 4 * len(CATEGORIES)
    docs = [json.loads(d) for d in df["doc"]]
    ref = _lm_eval_scores(docs, [int(p) for p in df["prediction"]])
    group = run.metrics["groups"]["bbq"]
    for metric, value in ref.items():
        assert group.get(metric, {}).get("value", math.nan) == pytest.approx(value, nan_ok=True), metric
