"""`workbench interp <tool> --run RUN --samples SELECTOR [--workers N]`: one tool over many stored samples,
in this process or on a real two-node Ray cluster; the driver saves one artifact per sample."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from workbench.cli import main
from workbench.interp import artifacts

PROMPTS = ["Which organ pumps blood? The", "The quick brown fox", "What do plants need to make food?",
           "def add(a, b):\n    return", "True, False. True"]


@pytest.fixture
def stored_run(tmp_path):
    """A complete run of five samples of two tasks; the model got docs 0, 2 and 3 wrong."""
    from workbench.store import RunStore

    store = RunStore(tmp_path / "runs")
    run = store.create("run-1", {"model": {"spec": "hf:tiny"}, "tasks": {"toy": {}, "other": {}}})
    samples = pd.DataFrame({"task": ["toy", "toy", "toy", "toy", "other"], "doc_id": [0, 1, 2, 3, 0],
                            "prompt": PROMPTS, "target_text": [" heart", " jumps", " Sunlight", " a", " False"],
                            "acc": [0.0, 1.0, 0.0, 0.0, 1.0]})
    store.publish(run, samples, {"tasks": {}})
    return store.root


def _fan_out(capsys, tiny_model_dir, store, arts, *extra) -> list[str]:
    rc = main(["interp", "logit-lens", "--model", f"hf:{tiny_model_dir}", "--run", "run-1", "--store", str(store),
               "--artifacts", str(arts), "-k", "3", "--quiet", *extra])
    assert rc == 0
    return capsys.readouterr().out.split()


def _linked(aid, arts) -> tuple[str, str]:
    src = artifacts.load(aid, arts).meta.source
    return src["task"], src["doc_id"]


def test_wrong_samples_of_a_task_get_one_artifact_each(tiny_model_dir, stored_run, tmp_path, capsys):
    arts = tmp_path / "arts"
    ids = _fan_out(capsys, tiny_model_dir, stored_run, arts, "--samples", "wrong", "--task", "toy")
    assert sorted(_linked(a, arts) for a in ids) == [("toy", "0"), ("toy", "2"), ("toy", "3")]
    assert all(set(artifacts.load(a, arts).top["rank"]) == {0, 1, 2} for a in ids)  # the tool's own flags apply (-k 3)
    ids = _fan_out(capsys, tiny_model_dir, stored_run, arts, "--samples", "all", "--max-samples", "4")
    assert [_linked(a, arts) for a in ids] == [("toy", "0"), ("toy", "1"), ("toy", "2"), ("toy", "3")]
    ids = _fan_out(capsys, tiny_model_dir, stored_run, arts, "--samples", "1,3", "--task", "toy")
    assert sorted(_linked(a, arts) for a in ids) == [("toy", "1"), ("toy", "3")]


@pytest.mark.parametrize("extra,message", [
    (["--samples", "wrong"], "--samples needs --run"),
    (["--run", "run-1", "--samples", "7,8"], "no sample with doc_id 7, 8"),
    (["--run", "run-1", "--samples", "wrong", "--task", "nope"], "no samples of task 'nope'"),
    (["--run", "run-1", "--sample", "1", "--workers", "2"], "--workers fans a tool out"),
])
def test_bad_fan_out_requests_are_one_line(extra, message, tiny_model_dir, stored_run, tmp_path, capsys):
    rc = main(["interp", "logit-lens", "--model", f"hf:{tiny_model_dir}", "--store", str(stored_run),
               "--artifacts", str(tmp_path / "a"), *extra])
    assert rc == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("workbench: error:")]
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.slow
def test_fan_out_on_ray_workers_equals_local(ray_cluster, tiny_model_dir, stored_run, tmp_path, capsys):
    local = tmp_path / "local"
    ids_local = _fan_out(capsys, tiny_model_dir, stored_run, local, "--samples", "all")
    arts = tmp_path / "ray"
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "interp", "logit-lens", "--model",
                          f"hf:{tiny_model_dir}", "--run", "run-1", "--samples", "all", "--store", str(stored_run),
                          "--artifacts", str(arts), "-k", "3", "--workers", "2", "--ray-address",
                          ray_cluster.address], capture_output=True, text=True, env=ray_cluster.env, timeout=900)
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert "5 artifacts on 2 Ray workers" in out.stderr
    by_sample = {_linked(a, arts): artifacts.load(a, arts) for a in ids}
    assert len(by_sample) == 5
    for aid in ids_local:  # the same numbers as in one process, whichever worker ran a sample
        ref = artifacts.load(aid, local)
        got = by_sample[_linked(aid, local)]
        if ref.target_prob is not None:
            np.testing.assert_array_equal(got.target_prob, ref.target_prob)
        assert json.dumps(got.meta.source, sort_keys=True) == json.dumps(ref.meta.source, sort_keys=True)
        pd.testing.assert_frame_equal(got.top, ref.top)
        assert set(got.top["rank"]) == {0, 1, 2}  # -k 3 travelled to the workers
