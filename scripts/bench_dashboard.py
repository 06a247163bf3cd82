"""Time to first paint of the dashboard in headless Chromium on a synthetic store of 50 runs x 2,000 samples.

    PYTHONPATH=. python scripts/bench_dashboard.py [--runs 50] [--samples 2000] [--repeats 3] [--store DIR]

Builds the store once (same schema as `workbench eval` writes; metrics from the harness's own
compute_metrics), serves the app with werkzeug on 127.0.0.1, and for the leaderboard and a
sample-explorer page reports: first contentful paint (the browser's paint timing), and the time until
the page's data is on screen (grid rows rendered), cold (first load after server start, caches empty)
and warm (median of the repeats).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = [("mmlu_" + s, "mmlu", s) for s in ("anatomy", "astronomy", "virology", "marketing", "nutrition")] + \
        [(t, None, None) for t in ("arc_easy", "arc_challenge", "hellaswag", "truthfulqa_mc1", "winogrande")]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def build_store(root: Path, n_runs: int, n_samples: int, seed: int = 0) -> None:
    from workbench.eval.harness import compute_metrics
    from workbench.store import RunStore

    store = RunStore(root)
    rng = np.random.default_rng(seed)
    per_task = n_samples // len(TASKS)
    base = []
    for task, group, subset in TASKS:
        for d in range(per_task):
            prompt = f"Question {task} {d}: " + "lorem ipsum dolor sit amet " * 12 + "\nAnswer:"
            base.append({"task": task, "group": group, "subset": subset, "doc_id": d, "prompt": prompt,
                         "target": "0", "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(),
                         "target_text": " A", "choices": [" A", " B", " C", " D"]})
    base_df = pd.DataFrame(base)
    tasks_manifest = {t: {"benchmark": t.split("_")[0], "subset": s, "group": g, "doc_ids": list(range(per_task))}
                      for t, g, s in TASKS}
    for i in range(n_runs):
        skill = 0.25 + 0.5 * i / max(1, n_runs - 1)
        df = base_df.copy()
        ll = rng.normal(-2, 1, size=(len(df), 4))
        right = rng.random(len(df)) < skill
        ll[right, 0] = ll[right].max(axis=1) + 0.5
        pred = ll.argmax(axis=1)
        df["loglikelihoods"] = list(ll)
        df["is_greedy"] = list(ll == ll.max(axis=1, keepdims=True))
        df["prediction"] = pred.astype(str)
        df["acc"] = (pred == 0).astype(float)
        df["acc_norm"] = df["acc"]
        manifest = {"model": {"spec": f"synthetic-{i % 10}", "backend": ["hf", "gguf", "llamacpp"][i % 3],
                              "quantization": "none"}, "suite": ["quick", "full"][i % 2], "tasks": tasks_manifest,
                    "n_samples": len(df), "created": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"}
        run = store.create(f"synthetic-{i:03d}", manifest)
        store.publish(run, df, compute_metrics(df, manifest, 0))


def first_paint(page, url: str, ready: str) -> dict[str, float]:
    t0 = time.perf_counter()
    page.goto(url)
    page.locator(ready).first.wait_for(timeout=120_000)
    ready_s = time.perf_counter() - t0
    fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")
    return {"first_contentful_paint_s": None if fcp is None else fcp / 1000, "data_on_screen_s": ready_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--store", help="reuse/build the synthetic store here (default: a temp dir)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from workbench.dashboard import create_app

    root = Path(args.store or tempfile.mkdtemp(prefix="bench-dash-"))
    if not any(root.glob("synthetic-*")):
        t = time.perf_counter()
        build_store(root, args.runs, args.samples)
        print(f"built {args.runs} runs x {args.samples} samples in {time.perf_counter() - t:.1f} s ({root})")
    app = create_app(root, root / "no-artifacts")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request would drown the figures
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    pages = {"leaderboard": ("/", "#lb-grid .ag-center-cols-container .ag-row"),
             "sample explorer": (f"/samples/synthetic-{args.runs - 1:03d}?baseline=synthetic-000",
                                 "#se-grid .ag-center-cols-container .ag-row")}
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=FLAGS)
        for name, (path, ready) in pages.items():
            runs = []
            for _ in range(args.repeats + 1):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                runs.append(first_paint(ctx.new_page(), url + path, ready))
                ctx.close()
            cold, warm = runs[0], runs[1:]
            results[name] = {"cold": cold, "warm_median": {k: statistics.median(r[k] for r in warm) for k in cold}}
        browser.close()
    srv.shutdown()
    print(json.dumps({"runs": args.runs, "samples_per_run": args.samples, "results": results}, indent=2))
    for name, r in results.items():
        print(f"{name:>16}: cold FCP {r['cold']['first_contentful_paint_s']:.2f} s, data {r['cold']['data_on_screen_s']:.2f} s;"
              f" warm FCP {r['warm_median']['first_contentful_paint_s']:.2f} s, data {r['warm_median']['data_on_screen_s']:.2f} s")


if __name__ == "__main__":
    main()
