"""`workbench eval --workers N` on a real two-node Ray cluster (head + a node joined with `ray start
--address`, both on 127.0.0.1): per-sample results equal a one-process run's, a worker killed
mid-chunk and a driver killed mid-run both end in that same run, a worker that cannot load the
model is one clear error. Each run is the real CLI in a subprocess."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from workbench.eval.harness import plan_chunks, plan_units
from workbench.store import RunStore

pytestmark = pytest.mark.slow

TASKS = "arc_easy,gsm8k"  # a loglikelihood task and a generative one (continuous batching on the workers)
LIMIT, CHUNK, POOL = 24, 4, 8  # 12 chunks, in units of 2


def _units(done=()) -> int:
    """Units of work the driver hands out (chunks pooled, POOL docs a unit) while `done` chunks are journalled."""
    chunks = plan_chunks({"arc_easy": list(range(LIMIT)), "gsm8k": list(range(LIMIT))}, CHUNK)
    todo = {(c.task, c.index) for c in chunks} - set(done)
    return len(plan_units(chunks, {"arc_easy": "multiple_choice", "gsm8k": "generate_until"}, POOL, todo=todo))



def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def _eval_args(model: str, data_dir, store, run_id: str) -> list[str]:
    return ["eval", "--model", model, "--tasks", TASKS, "--limit", str(LIMIT), "--chunk-size", str(CHUNK),
            "--pool-docs", str(POOL), "--data-dir", str(data_dir), "--store", str(store), "--run-id", run_id, "--no-progress"]


def _run(cmd: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, real_data_dir, tmp_path_factory, ray_cluster):
    """The same request in one process with one torch thread (as each 1-CPU worker has)."""
    store = tmp_path_factory.mktemp("ref-runs")
    env = dict(ray_cluster.env, WORKBENCH_THREADS="1")
    out = _run(_cli(*_eval_args(f"hf:{tiny_model_dir}", real_data_dir, store, "ref")), env)
    assert out.returncode == 0, out.stderr
    return RunStore(store).load("ref")


def _assert_same_run(run, ref) -> None:
    pd.testing.assert_frame_equal(run.samples, ref.samples)  # exact: same prompts, chunks and numbers
    assert run.metrics == ref.metrics
    assert run.manifest["tasks"] == ref.manifest["tasks"]


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"eval ended before {what}: {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_two_workers_on_two_nodes_equal_one_process(ray_cluster, tiny_model_dir, real_data_dir, tmp_path, reference):
    out = _run(_cli(*_eval_args(f"hf:{tiny_model_dir}", real_data_dir, tmp_path, "dist"), "--workers", "2",
                    "--ray-address", ray_cluster.address, "--json"), ray_cluster.env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["run_id"] == "dist"
    run = RunStore(tmp_path).load("dist")
    _assert_same_run(run, reference)
    (session,) = run.manifest["execution"]
    assert session["started"] <= session["ended"] and session["mode"] == "ray" and session["workers"] == 2 and session["address"] == ray_cluster.address
    assert session["nodes"] == 2  # one 1-CPU worker per node: the chunks really ran on both
    assert session["items"] == _units() == LIMIT * 2 // POOL and session["retried"] == 0
    assert session["driver_overhead_s_mean"] is not None
    assert [{k: v for k, v in s.items() if k not in ("started", "ended", "eval_s")} for s in reference.manifest["execution"]] \
        == [{"mode": "local", "workers": 1, "threads": 1}]


def test_worker_killed_mid_chunk_is_retried_with_identical_results(ray_cluster, tiny_model_dir, real_data_dir,
                                                                   tmp_path, reference):
    proc = subprocess.Popen(_cli(*_eval_args(f"hf:{tiny_model_dir}", real_data_dir, tmp_path, "hit"), "--workers", "2",
                                 "--ray-address", ray_cluster.address), env=ray_cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: ray_cluster.worker_pids("call"), proc, "a worker started a chunk")
        victim = ray_cluster.worker_pids("call")[0]
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        out, err = proc.communicate(timeout=900)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    run = RunStore(tmp_path).load("hit")
    _assert_same_run(run, reference)
    assert run.manifest["execution"][0]["retried"] >= 1  # the killed worker's chunk ran again elsewhere


def test_driver_killed_then_resumed_on_workers(ray_cluster, tiny_model_dir, real_data_dir, tmp_path, reference):
    journal = tmp_path / ".partial" / "killed" / "journal.jsonl"
    proc = subprocess.Popen(_cli(*_eval_args(f"hf:{tiny_model_dir}", real_data_dir, tmp_path, "killed"), "--workers",
                                 "2", "--ray-address", ray_cluster.address), env=ray_cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 2, proc, "two chunks were journalled")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = RunStore(tmp_path)
    assert store.list() == [] and [p.run_id for p in store.partial()] == ["killed"]
    done = store.open_partial("killed").finished_chunks()
    assert 2 <= len(done) < LIMIT // CHUNK * 2
    out = _run(_cli("eval", "--resume", "killed", "--store", str(tmp_path), "--workers", "2", "--ray-address",
                    ray_cluster.address, "--no-progress"), ray_cluster.env)
    assert out.returncode == 0, out.stderr
    run = store.load("killed")
    _assert_same_run(run, reference)
    killed, resumed = run.manifest["execution"]  # the killed session is recorded, without an end
    assert "ended" not in killed and killed["mode"] == "ray" and "ended" in resumed
    assert resumed["items"] == _units(done)


def test_a_worker_that_cannot_load_the_model_is_one_clear_error(ray_cluster, real_data_dir, tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    out = _run(_cli(*_eval_args(f"hf:{missing}", real_data_dir, tmp_path / "runs", "broken"), "--workers", "2",
                    "--ray-address", ray_cluster.address), ray_cluster.env)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == [f"workbench: error: a Ray worker could not load the model: model directory not found: {missing}"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("manifest.json"))
