"""openai: backend against a real llama-cpp-python server on 127.0.0.1, checked against in-process llama.cpp."""
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

pytest.importorskip("llama_cpp.server")
pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(smollm2_gguf):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--host",
                             "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/models", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail("llama-cpp-python server did not come up")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_server_echo_logprobs_are_misaligned_and_detected(server):
    from workbench.eval.models import load_model

    lm = load_model(f"openai:{server}")
    # The server's echo log-probs are shifted by one position; the probe must notice and switch.
    assert lm.mode == "forced"
    echo, forced = lm._score_echo("The capital of France is", " Paris"), lm._score_forced("The capital of France is", " Paris")
    assert abs(echo[0] - forced[0]) > 1.0 and forced[0] > -1.0
    lm.close()


def test_openai_backend_matches_in_process_llamacpp(server, real_data_dir, tmp_path):
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    store, out = RunStore(tmp_path), {}
    for spec in ("llamacpp:smollm2-135m", f"openai:{server}"):
        req = EvalRequest(model=spec, tasks=["mmlu_anatomy", "arc_easy"], limit=5, data_dir=str(real_data_dir))
        out[spec] = run_eval(req, store=store, progress=False).samples
    a, b = out.values()
    single = a.task == "mmlu_anatomy"  # one-token answers: same kernels both ways -> near-identical
    d1 = np.concatenate([np.abs(np.subtract(x, y)) for x, y in zip(a[single].loglikelihoods, b[single].loglikelihoods)])
    dm = np.concatenate([np.abs(np.subtract(x, y)) for x, y in zip(a[~single].loglikelihoods, b[~single].loglikelihoods)])
    assert d1.max() < 0.02
    # Multi-token answers: the server decodes token by token, in-process scoring runs them as one batch;
    # llama.cpp's quantized kernels differ between those paths by a few hundredths of a nat per token.
    assert np.median(dm) < 0.2
    assert (a.prediction.values == b.prediction.values).mean() >= 0.9
    print(f"\nsingle-token max {d1.max():.4f}; multi-token median {np.median(dm):.3f} max {dm.max():.3f}")
