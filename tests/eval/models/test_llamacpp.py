"""The same GGUF through the dequantized torch backend and llama.cpp's quantized kernels."""
import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]


def test_gguf_and_llamacpp_agree_within_quantization_tolerance(real_data_dir, tmp_path, smollm2_checkpoint):
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    store, runs = RunStore(tmp_path), {}
    for spec in ("gguf:smollm2-135m", "llamacpp:smollm2-135m"):
        req = EvalRequest(model=spec, tasks=["mmlu_anatomy", "arc_easy"], limit=10, data_dir=str(real_data_dir))
        runs[spec] = run_eval(req, store=store, progress=False)
    a, b = (r.samples for r in runs.values())
    assert runs["llamacpp:smollm2-135m"].manifest["model"]["quantization"] == "MOSTLY_Q4_1"
    assert (a.prompt.values == b.prompt.values).all()
    agree = float((a.prediction.values == b.prediction.values).mean())
    diffs = np.concatenate([np.abs(np.subtract(x, y)) for x, y in zip(a.loglikelihoods, b.loglikelihoods)])
    # Tolerance from the measured gap between llama.cpp's re-quantized activations and float compute
    # (shared/research/models.md: top-1 agreement 71/71, per-answer gaps 0.1-0.6 nats).
    assert agree >= 0.9
    assert float(np.median(diffs)) < 0.25 and float(diffs.max()) < 1.5
    print(f"\nprediction agreement {agree:.3f}; |delta ll| median {np.median(diffs):.3f} max {diffs.max():.3f}")
