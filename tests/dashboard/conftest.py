"""A deliberately messy run store and artifact root, and a headless Chromium for the browser tests.

Runs made by the real harness on two tiny random models, plus runs derived from them: hostile model output
(HTML/JS, a 200,000-character answer, a 5,000-line generation, bidi overrides), an XSTest-like safety task
whose primary metric is lower-is-better, an int8 run and an OpenAI-server run (no torch weights). Beside them
a stray folder, a stray file and a run with a truncated metrics.json. Artifacts made by the real interp
tools on the tiny model (two linked to a stored sample), plus one whose manifest has no id, one with a
truncated manifest and one with a non-string `created` and a non-dict `source`.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import build_tiny_model, derive_run

TASKS = ["mmlu_anatomy", "arc_easy"]
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
LONG_ANSWER = "B" * 200_000                      # one unbroken 200k-character answer
TALL_ANSWER = "step\n" * 5_000                   # a 5,000-line generation
BIDI = "Invoice \u202egpj.exe\u202c done"       # RLO reverses 'gpj.exe' on screen unless neutralised
STRAY = ("Old results (copy)", "notes.txt", "run-truncated")
BAD_ARTIFACTS = ("attention-noid", "attention-truncated")
SHOTS: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    if SHOTS:
        terminalreporter.write_line(f"dashboard screenshots: {SHOTS[0]}")
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
    hostile: dict[str, str]  # "xss" | "long" | "tall" | "bidi" -> sample key in run-xss
    odd_artifact: str        # an artifact with a non-string `created` and a string `source`
    good_runs: list[str]
    stray: tuple[str, ...] = STRAY                  # store entries that must be skipped and named
    bad_artifacts: tuple[str, ...] = BAD_ARTIFACTS
    long_answer: str = LONG_ANSWER
    tall_answer: str = TALL_ANSWER
    bidi: str = BIDI


def _safety(seed: int):
    """An XSTest-like task from run-a's ARC items: over_refusal on even docs (lower is better), unsafe_refusal
    on odd ones, refusal on all; generations as answers."""

    def edit(df):
        d = df[df["task"] == "arc_easy"].copy().reset_index(drop=True)
        rng = np.random.default_rng(seed)
        refused = rng.random(len(d)) < 0.5
        safe = (d["doc_id"].astype(int) % 2 == 0).to_numpy()
        d["task"], d["group"], d["subset"] = "xstest", None, None
        d["generation"] = np.where(refused, "I'm sorry, I can't help with that.", "Sure. First, open the lid; then ...")
        d["refusal"] = refused.astype(float)
        d["over_refusal"] = np.where(safe, refused, np.nan).astype(float)
        d["unsafe_refusal"] = np.where(~safe, refused, np.nan).astype(float)
        return d.drop(columns=[c for c in ("acc", "acc_norm", "prediction", "choices", "loglikelihoods", "is_greedy",
                                           "confidence", "brier") if c in d.columns])

    def manifest(m):
        task = dict(m["tasks"]["arc_easy"], group=None, subset=None, primary_metric="over_refusal",
                    directions={"refusal": "higher", "over_refusal": "lower", "unsafe_refusal": "higher"})
        return {**m, "tasks": {"xstest": task}, "suite": "safety"}

    return edit, manifest


def _model(spec: str, backend: str):
    def manifest(m):
        return {**m, "model": {**m["model"], "spec": spec, "backend": backend}}

    return manifest


@pytest.fixture(scope="session")
def dash_env(tmp_path_factory, tiny_model_dir, fixture_mirror) -> DashEnv:

    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.interp import artifacts, attention, attribution, circuit, drift, logit_lens, patching, probe, trace
    from workbench.interp.circuit_tasks import Example, TaskData
    from workbench.interp.drift import variant_of
    from workbench.interp.hooks import load_hooked
    from workbench.interp.probe_data import ProbeDataset
    from workbench.interp.sources import from_run
    from workbench.interp.trace import Fact
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
        df.loc[1, "generation"] = LONG_ANSWER
        df.loc[2, "generation"] = TALL_ANSWER
        df.loc[3, "generation"] = BIDI
        df.loc[3, "prompt"] = f"Rename {BIDI}?"
        return df

    derive_run(store, "run-a", "run-xss", hostile)
    derive_run(store, "run-a", "run-safe-a", *_safety(0))
    derive_run(store, "run-a", "run-safe-b", *_safety(1))
    spec_b = store.load("run-b").manifest["model"]["spec"]
    derive_run(store, "run-b", "run-int8", lambda df: df, _model("int8:" + spec_b.partition(":")[2], "int8"))
    derive_run(store, "run-b", "run-openai", lambda df: df, _model("openai:http://127.0.0.1:9/v1", "openai"))
    # The mess a store collects: a stray folder and file, and a run whose metrics.json was cut short.
    (store.root / STRAY[0]).mkdir()
    (store.root / STRAY[0] / "readme.txt").write_text("old stuff")
    (store.root / STRAY[1]).write_text("notes")
    shutil.copytree(store.root / "run-a", store.root / STRAY[2])
    metrics = store.root / STRAY[2] / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    x = store.load("run-xss").samples
    hostile_keys = {name: f"{x.task[i]}#{x.doc_id[i]}" for i, name in enumerate(("xss", "long", "tall", "bidi"))}

    arts = root / "artifacts"
    model = load_hooked(f"hf:{tiny_model_dir}")
    # A lens target that is the top token somewhere, so the tables have a highlighted cell.
    top_token = str(logit_lens.run(model, f"{XSS} The quick brown fox", k=1).top.sort_values("layer").iloc[-1]["token"])
    try:
        model.single_token(top_token)
    except Exception:
        top_token = " the"
    a = store.load("run-a").samples
    row = a[a["task"] == "arc_easy"].iloc[0]
    src = from_run("run-a", str(row["doc_id"]), task="arc_easy", store=store.root)
    ids = {
        "attention": artifacts.save(attention.run(model, src.prompt[-200:], seq_lens=[8], n_seqs=2, source=src.link()), arts),
        "logit_lens": artifacts.save(logit_lens.run(model, f"{XSS} The quick brown fox", k=3, target=top_token,
                                          positions=[0, -1], source=src.link()), arts),
        "attribution": artifacts.save(attribution.run(model, "The quick brown fox jumps", " the", n_steps=16,
                                                internal_batch_size=8), arts),
        "patching": artifacts.save(patching.run(model, "The heart pumps blood", "The lung pumps blood", answer=" the",
                                         wrong=" a"), arts),
        "drift": artifacts.save(drift.run(model, variant_of(model, "int8-dynamic"), ["The quick brown fox jumps."]), arts),
    }
    ids["trace"] = artifacts.save(trace.run(model, [Fact(f"{XSS} The heart pumps blood", "heart", " the"),
                                                Fact("The quick brown fox", "quick brown", " the")],
                                         samples=2, window=1), arts)
    pairs = (("The heart pumps blood", "The lung pumps blood"), ("The quick brown fox", "The quick brown dog"),
             ("The fox jumps over", "The dog jumps over"))
    tid = (model.single_token(" the"), model.single_token(" a"))
    task = TaskData("tiny", "logit_diff", [Example(c, k, " the", " a", tid, (1.0, -1.0)) for c, k in pairs])
    ids["circuit"] = artifacts.save(circuit.run(model, task, methods=["eap", "eap-ig"], ig_steps=2, exact_sample=6), arts)
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    texts = [f"It was {words[i % 6]} and {words[(i * 5) % 6]} {rng.integers(100)}" for i in range(40)]
    ds = ProbeDataset("toy", texts, np.array([i % 2 for i in range(40)]), np.arange(40))
    ids["probe"] = artifacts.save(probe.run(model, ds), arts)
    # Damaged artifacts: a manifest without "id", a truncated manifest, and an odd-but-readable one.
    for name in BAD_ARTIFACTS:
        shutil.copytree(arts / ids["attention"], arts / name)
    m = json.loads((arts / ids["attention"] / "manifest.json").read_text())
    (arts / BAD_ARTIFACTS[0] / "manifest.json").write_text(json.dumps({k: v for k, v in m.items() if k != "id"}))
    (arts / BAD_ARTIFACTS[1] / "manifest.json").write_text(json.dumps(m)[:50])
    odd = "attention-odd-created"
    shutil.copytree(arts / ids["attention"], arts / odd)
    (arts / odd / "manifest.json").write_text(json.dumps({**m, "id": odd, "created": {"when": [2026, 1, 1]},
                                                          "source": "run-a"}))
    good = ["run-a", "run-b", "run-xss", "run-safe-a", "run-safe-b", "run-int8", "run-openai"]
    return DashEnv(store.root, arts, "run-a", "run-b", "run-xss", XSS, f"arc_easy#{row['doc_id']}", ids, hostile_keys,
                   odd, good)


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


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory) -> Path:
    """Where the browser tests keep a screenshot of every page they visit ($WORKBENCH_SCREENSHOTS, else a
    folder of pytest's base temp dir, printed at the end of the run)."""
    path = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    SHOTS[:] = [path]
    return path


@pytest.fixture
def page(browser, server_url, shots_dir):
    """A fresh page that records console errors and any request leaving the app's origin."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.errors, pg.foreign = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.foreign.append(r.url) if not r.url.startswith(server_url) else None)
    pg.shots = shots_dir
    yield pg
    ctx.close()
