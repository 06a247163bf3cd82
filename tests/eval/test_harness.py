import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from workbench.eval.harness import EvalRequest, plan_chunks, plan_units, run_eval
from workbench.store import RunStore

TASKS = ["mmlu_anatomy", "mmlu_cloze_anatomy", "arc_easy", "truthfulqa_mc1", "truthfulqa_mc2"]


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, fixture_mirror, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=TASKS, data_dir=str(fixture_mirror), chunk_size=3,
                      device="cpu")
    return run_eval(req, store=store, progress=False)


def test_per_sample_table_has_the_contract_columns(tiny_run):
    df = tiny_run.samples
    for col in ("task", "doc_id", "prompt", "target", "prediction", "acc", "choices", "loglikelihoods", "prompt_hash"):
        assert col in df.columns
    assert df.groupby("task").size().to_dict() == {"mmlu_anatomy": 8, "mmlu_cloze_anatomy": 8, "arc_easy": 6,
                                                   "truthfulqa_mc1": 4, "truthfulqa_mc2": 4}
    mc = df[df.task == "arc_easy"]
    assert all(len(c) == len(l) for c, l in zip(mc.choices, mc.loglikelihoods))
    # acc is lm-eval's: 1 iff the argmax choice is the target
    for _, row in mc.iterrows():
        assert row.acc == float(int(row.prediction) == int(row.target))


def test_metrics_are_means_with_stderr_and_bootstrap_ci(tiny_run):
    from workbench.scoring import aggregates

    df = tiny_run.samples
    for task, ms in tiny_run.metrics["tasks"].items():
        part = df[df.task == task]
        for metric, est in ms.items():
            if metric not in part.columns:  # an aggregate metric (ECE, ...): a statistic of the items
                agg = aggregates.AGGREGATES.get(metric)
                assert est["value"] == pytest.approx(agg.fn(*(part[c].to_numpy(float)[None] for c in agg.columns))[0])
                assert est["n"] == len(part) and est["ci95_low"] <= est["value"] <= est["ci95_high"]
                continue
            assert est["value"] == pytest.approx(part[metric].mean())
            assert est["n"] == len(part)
            assert est["ci95_low"] <= est["value"] <= est["ci95_high"]
            if part[metric].nunique() > 1:
                assert est["stderr"] == pytest.approx(part[metric].std(ddof=1) / len(part) ** 0.5)
    assert set(tiny_run.metrics["groups"]) == {"mmlu", "mmlu_cloze"}


def test_manifest_pins_model_tasks_data_and_environment(tiny_run):
    m = tiny_run.manifest
    assert m["status"] == "complete" and m["model"]["backend"] == "hf" and len(m["model"]["sha256"]) == 64
    t = m["tasks"]["mmlu_anatomy"]
    assert t["num_fewshot"] == 5 and len(t["prompt_hash"]) == 64 and t["doc_ids"] == list(range(8))
    assert {d["path"] for d in t["data"]} == {"mmlu/test/anatomy_test.csv", "mmlu/dev/anatomy_dev.csv"}
    assert all(len(d["sha256"]) == 64 for d in t["data"])
    assert {"torch", "transformers", "lm_eval"} <= set(m["packages"])
    assert m["hardware"]["cpu_count"] and m["timings"]["total_s"] > 0 and m["seed"] == 1234
    assert m["request"]["device"] == "cpu" and m["model"]["extra"]["device"] == "cpu"  # CPU and GPU numerics differ


def test_load_run_returns_pandas(tiny_run):
    import workbench

    df = workbench.load_run(tiny_run.run_id, store=str(tiny_run.path.parent))
    assert isinstance(df, pd.DataFrame) and len(df) == 30


def _wait_for_lines(path, n, proc, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"eval ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no progress in the journal")


def _kill_and_resume(model, tasks, data_dir, store_dir, limit, chunk, after_chunks, pool=64):
    """Start an eval, SIGKILL it after some chunks, check nothing looks complete, resume, run again clean."""
    base = [sys.executable, "-m", "workbench.cli", "eval", "--model", model, "--tasks", tasks, "--data-dir",
            str(data_dir), "--store", str(store_dir), "--limit", str(limit), "--chunk-size", str(chunk), "--no-progress",
            "--pool-docs", str(pool)]
    proc = subprocess.Popen(base + ["--run-id", "killed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = store_dir / ".partial" / "killed" / "journal.jsonl"
    _wait_for_lines(journal, after_chunks, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = RunStore(store_dir)
    assert store.list() == [] and [p.run_id for p in store.partial()] == ["killed"]
    listed = subprocess.run([sys.executable, "-m", "workbench.cli", "runs", "list", "--store", str(store_dir), "--json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout)["runs"] == []
    n_done = len(store.open_partial("killed").finished_chunks())
    resumed = subprocess.run([sys.executable, "-m", "workbench.cli", "eval", "--resume", "killed", "--store",
                              str(store_dir), "--no-progress"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "run_id: killed" in resumed.stdout
    clean = subprocess.run(base + ["--run-id", "clean"], capture_output=True, text=True, timeout=900)
    assert clean.returncode == 0, clean.stderr
    a = store.load("killed").samples.drop(columns=[])
    b = store.load("clean").samples
    pd.testing.assert_frame_equal(a, b)  # exact: same prompts, same batches, same numbers
    assert store.load("killed").metrics == store.load("clean").metrics
    return n_done


def test_sigkill_then_resume_equals_uninterrupted_run(tiny_model_dir, real_data_dir, tmp_path):
    n_chunks = 600 // 4
    done = _kill_and_resume(f"hf:{tiny_model_dir}", "arc_easy", real_data_dir, tmp_path / "runs", 600, 4, 3)
    assert 3 <= done < n_chunks


@pytest.mark.slow
def test_sigkill_then_resume_on_smollm2(real_data_dir, tmp_path, smollm2_checkpoint):
    done = _kill_and_resume("smollm2-135m", "mmlu_anatomy", real_data_dir, tmp_path / "runs", 9, 3, 1, pool=3)
    assert 1 <= done < 3


def test_chunks_are_pooled_into_units_and_a_resume_keeps_them_whole():
    plan = {"gsm8k": list(range(10)), "arc_easy": list(range(5)), "humaneval": list(range(7)), "xstest": [1, 2],
            "mmlu_anatomy": list(range(9))}
    types = {"gsm8k": "generate_until", "arc_easy": "multiple_choice", "humaneval": "generate_until",
             "xstest": "generate_until", "mmlu_anatomy": "multiple_choice"}
    chunks = plan_chunks(plan, 4)
    units = plan_units(chunks, types, pool=12)
    named = [[(c.task, c.index) for c in unit] for unit in units]
    # generation and scoring apart, each pooled in plan order, at most 12 docs a unit
    assert named == [[("gsm8k", 0), ("gsm8k", 1), ("gsm8k", 2)], [("arc_easy", 0), ("arc_easy", 1), ("mmlu_anatomy", 0)],
                     [("humaneval", 0), ("humaneval", 1), ("xstest", 0)], [("mmlu_anatomy", 1), ("mmlu_anatomy", 2)]]
    assert sorted((c.task, c.index) for u in units for c in u) == sorted((c.task, c.index) for c in chunks)
    # a resumed run runs every unit that still has a chunk to do, whole, and no other
    todo = {("gsm8k", 2), ("humaneval", 1), ("xstest", 0), ("mmlu_anatomy", 2)}
    resumed = plan_units(chunks, types, pool=12, todo=todo)
    assert [[(c.task, c.index) for c in u] for u in resumed] == [named[0], named[2], named[3]]
    assert plan_units(chunks, types, 64, todo=set()) == []
