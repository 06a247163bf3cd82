"""The torch dynamic int8 backend: same items and prompts as the float model, slightly different scores."""
from __future__ import annotations

import numpy as np

from workbench.analysis.compare import compare_runs
from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore


def test_int8_run_is_comparable_with_float_run(tmp_path, tiny_model_dir, fixture_mirror):
    store = RunStore(tmp_path)
    runs = {}
    for prefix in ("hf", "int8"):
        req = EvalRequest(model=f"{prefix}:{tiny_model_dir}", tasks=["arc_easy"], data_dir=str(fixture_mirror))
        runs[prefix] = run_eval(req, store=store, run_id=f"tiny-{prefix}", progress=False)
    m = runs["int8"].manifest["model"]
    assert m["backend"] == "int8" and "int8" in m["quantization"]
    assert m["sha256"] == runs["hf"].manifest["model"]["sha256"]  # same weights, quantized at load
    a, b = runs["hf"].samples, runs["int8"].samples
    lla, llb = np.concatenate(a.loglikelihoods.to_list()), np.concatenate(b.loglikelihoods.to_list())
    assert not np.array_equal(lla, llb)          # the int8 kernels really ran
    assert np.abs(lla - llb).max() < 0.5          # ... and approximate the float model
    c = compare_runs([runs["hf"], runs["int8"]], n_boot=100)
    assert dict(c.manifest_diff)["model.backend"] == ["hf", "int8"]
