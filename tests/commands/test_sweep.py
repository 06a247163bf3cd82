"""`workbench sweep`: one run per model, then the comparison of them all (in this process, or on Ray)."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import build_tiny_model

from workbench.cli import main
from workbench.store import RunStore


@pytest.fixture(scope="module")
def two_models(tiny_model_dir, tmp_path_factory):
    return [f"hf:{tiny_model_dir}", f"hf:{build_tiny_model(tmp_path_factory.mktemp('tiny-b'), seed=1)}"]


def _sweep_args(models, data_dir, store, out) -> list[str]:
    return ["sweep", "--models", ",".join(models), "--tasks", "arc_easy,mmlu_anatomy", "--limit", "6",
            "--data-dir", str(data_dir), "--store", str(store), "--out", str(out), "--no-progress", "--json"]


def test_sweep_runs_each_model_then_compares_them(two_models, fixture_mirror, tmp_path, capsys):
    assert main(_sweep_args(two_models, fixture_mirror, tmp_path / "runs", tmp_path / "reports")) == 0
    report = json.loads(capsys.readouterr().out)
    store = RunStore(tmp_path / "runs")
    runs = [store.load(r["run_id"]) for r in report["runs"]]  # report order (store order breaks ties by name)
    assert [r.manifest["model"]["spec"] for r in runs] == two_models  # the first model is the baseline
    assert sorted(r.run_id for r in store.list()) == sorted(r.run_id for r in runs)
    assert {p["candidate"] for p in report["paired"]} == {runs[1].run_id}
    assert (tmp_path / "reports").is_dir() and any((tmp_path / "reports").glob("*.html"))


def test_sweep_refuses_a_single_or_unknown_model_before_running(tmp_path, fixture_mirror, capsys):
    for models, message in ((["hf:x"], "at least two different"), (["hf:x", "gpt-17"], "unknown model spec 'gpt-17'")):
        assert main(_sweep_args(models, fixture_mirror, tmp_path / "runs", tmp_path / "rep")) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sweep_on_ray_workers_equals_the_local_sweep(ray_cluster, two_models, fixture_mirror, tmp_path, capsys):
    assert main(_sweep_args(two_models, fixture_mirror, tmp_path / "local", tmp_path / "rep")) == 0
    capsys.readouterr()
    out = subprocess.run([sys.executable, "-m", "workbench.cli",
                          *_sweep_args(two_models, fixture_mirror, tmp_path / "ray", tmp_path / "rep2"),
                          "--workers", "2", "--ray-address", ray_cluster.address],
                         capture_output=True, text=True, env=dict(ray_cluster.env, WORKBENCH_THREADS="1"), timeout=1200)
    assert out.returncode == 0, out.stderr
    local, ray = ([r for spec in two_models for r in RunStore(tmp_path / where).list() if r.manifest["model"]["spec"] == spec]
                  for where in ("local", "ray"))
    assert [r.manifest["execution"][0]["mode"] for r in ray] == ["ray", "ray"]
    for a, b in zip(local, ray, strict=True):
        pd.testing.assert_frame_equal(a.samples, b.samples, check_exact=False, rtol=1e-5)
