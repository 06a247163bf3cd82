"""A run store made by the real harness on two tiny random models, artifacts made by the real interp tools
on the tiny model (one linked to a stored sample), and a headless Chromium for the browser tests."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_model, derive_run

TASKS = ["mmlu_anatomy", "arc_easy"]
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate"]


@dataclass
class DashEnv:
    store: Path
    artifacts: Path
    run_a: str
    run_b: str
    run_xss: str
    xss: str
    linked_key: str          # task#doc_id of the sample the attention/lens artifacts link to
    ids: dict[str, str]      # artifact kind -> id


@pytest.fixture(scope="session")
def dash_env(tmp_path_factory, tiny_model_dir, fixture_mirror) -> DashEnv:

    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.interp import artifacts
    from workbench.interp.attention import analyze
    from workbench.interp.attribute import attribute
    from workbench.interp.circuit import circuit
    from workbench.interp.circuit_tasks import Example, TaskData
    from workbench.interp.drift import compare, variant_of
    from workbench.interp.hooks import load_hooked
    from workbench.interp.logit_lens import lens
    from workbench.interp.patching import patch
    from workbench.interp.probe import probe
    from workbench.interp.probe_data import ProbeDataset
    from workbench.interp.sources import from_run
    from workbench.interp.trace import Fact, trace
    from workbench.store import RunStore

    root = tmp_path_factory.mktemp("dash")
    store = RunStore(root / "runs")
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-llama-1"), seed=1)
    for model, rid in ((tiny_model_dir, "run-a"), (other, "run-b")):
        run_eval(EvalRequest(model=f"hf:{model}", tasks=TASKS, data_dir=str(fixture_mirror)), store=store,
                 run_id=rid, progress=False)
    # A copy of run-a whose first prompt and a generation carry HTML/JS, as hostile model output would.
    def hostile(df):
        df.loc[0, "prompt"] = f"Question: {XSS}\nAnswer:"
        df["generation"] = None
        df.loc[0, "generation"] = f"Sure: {XSS} done"
        return df

    derive_run(store, "run-a", "run-xss", hostile)

    arts = root / "artifacts"
    model = load_hooked(f"hf:{tiny_model_dir}")
    a = store.load("run-a").samples
    row = a[a["task"] == "arc_easy"].iloc[0]
    src = from_run("run-a", str(row["doc_id"]), task="arc_easy", store=store.root)
    ids = {
        "attention": artifacts.save(analyze(model, src.prompt[-200:], seq_len=8, n_seqs=2, source=src.link()), arts),
        "logit_lens": artifacts.save(lens(model, f"{XSS} The quick brown fox", k=3, target=" the",
                                          positions=[0, -1], source=src.link()), arts),
        "attribution": artifacts.save(attribute(model, "The quick brown fox jumps", " the", n_steps=16,
                                                internal_batch_size=8), arts),
        "patching": artifacts.save(patch(model, "The heart pumps blood", "The lung pumps blood", answer=" the",
                                         wrong=" a"), arts),
        "drift": artifacts.save(compare(model, variant_of(model, "int8-dynamic"), ["The quick brown fox jumps."]), arts),
    }
    ids["trace"] = artifacts.save(trace(model, [Fact(f"{XSS} The heart pumps blood", "heart", " the"),
                                                Fact("The quick brown fox", "quick brown", " the")],
                                         samples=2, window=1), arts)
    pairs = (("The heart pumps blood", "The lung pumps blood"), ("The quick brown fox", "The quick brown dog"),
             ("The fox jumps over", "The dog jumps over"))
    tid = (model.single_token(" the"), model.single_token(" a"))
    task = TaskData("tiny", "logit_diff", [Example(c, k, " the", " a", tid, (1.0, -1.0)) for c, k in pairs])
    ids["circuit"] = artifacts.save(circuit(model, task, methods=["eap", "eap-ig"], ig_steps=2, exact_sample=6), arts)
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    texts = [f"It was {words[i % 6]} and {words[(i * 5) % 6]} {rng.integers(100)}" for i in range(40)]
    ds = ProbeDataset("toy", texts, np.array([i % 2 for i in range(40)]), np.arange(40))
    ids["probe"] = artifacts.save(probe(model, ds), arts)
    return DashEnv(store.root, arts, "run-a", "run-b", "run-xss", XSS, f"arc_easy#{row['doc_id']}", ids)


@pytest.fixture(scope="session")
def dash_app(dash_env):
    from workbench.dashboard import create_app

    return create_app(dash_env.store, dash_env.artifacts)


@pytest.fixture(scope="session")
def server_url(dash_app):
    """The app's WSGI server (what gunicorn serves) on a free port of 127.0.0.1."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, dash_app.server, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    th.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium; "
                    "scripts/bootstrap.sh test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (the dev extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server_url, tmp_path):
    """A fresh page that records console errors and any request leaving the app's origin."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.errors, pg.foreign = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.foreign.append(r.url) if not r.url.startswith(server_url) else None)
    pg.shots = tmp_path
    yield pg
    ctx.close()
