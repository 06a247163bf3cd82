"""Timings for the interpretability hook layer and patching, in one run on one machine.

    PYTHONPATH=. WORKBENCH_THREADS=1 python scripts/bench_interp.py [--model smollm2-135m] [--reps 5] [--json OUT]

1. forward: raw HF forward vs the bridge's plain forward vs run_with_cache (a few names; the full
   cache, the workbench's and the bridge's own; an early-layer name with the stop-at-layer shortcut),
   median wall and CPU time of --reps rounds after a warm-up, and each as a ratio to the raw HF forward;
2. exact patching of the residual stream (layer x position) batched (--batch-size cells per forward,
   each row resuming at its own block) vs the naive loop of one full forward per cell; both grids must agree;
3. attribution patching (all four site families, one forward + backward) vs exact patching of the
   same cells, with the AtP-vs-exact correlation per family.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import workbench  # noqa: F401  (environment first)

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"
PATCH_ATOL = 1e-4  # batched vs per-cell patched metric (logit units): float32 round-off only
LONG = ("The quick brown fox jumps over the lazy dog. Which organ pumps blood? The heart, the lung, the kidney "
        "and the liver are organs. What do plants need to make food? Sunlight, water and air.")


def timed(fns: dict[str, Callable[[], Any]], reps: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds of each function over `reps` rounds after a warm-up. Each round runs
    every function once, so a change in the machine's load shifts all of them alike; the CPU time (one
    thread) is the steadier measure on a machine shared with other jobs."""
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return ({k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import os

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.interp import patching as P
    from workbench.interp.hooks import load_hooked

    model = load_hooked(args.model)
    out: dict[str, Any] = {"model": args.model, "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()[0]}
    raw = AutoModelForCausalLM.from_pretrained(str(model.ref.checkpoint), dtype=torch.float32).eval()
    ids = model.tokenize(LONG)
    out["forward_tokens"] = ids.shape[-1]
    few = [f"blocks.{l}.hook_resid_post" for l in (5, 15, 25)]
    with torch.no_grad():
        out["max_abs_dlogit_vs_raw_hf"] = float((model.logits(ids) - raw(ids).logits).abs().max())
        out["forward_s"], out["forward_cpu_s"] = timed({
            "raw_hf": lambda: raw(ids),
            "bridge_plain": lambda: model.logits(ids),
            "cache_3_resid_names": lambda: model.run_with_cache(ids, few),
            "cache_full": lambda: model.run_with_cache(ids),
            "cache_full_bridge": lambda: model.bridge.run_with_cache(ids, return_cache_object=False),
            "cache_layer2_stop_early": lambda: model.run_with_cache(ids, ["blocks.2.hook_resid_post"], need_logits=False),
        }, args.reps)
    out["forward_vs_raw_hf"] = {k: v / out["forward_s"]["raw_hf"] for k, v in out["forward_s"].items()}
    out["forward_cpu_vs_raw_hf"] = {k: v / out["forward_cpu_s"]["raw_hf"] for k, v in out["forward_cpu_s"].items()}

    m = P.make_metric(model, "logit_diff", " Mary", " John")
    clean, corrupt = model.tokenize(CLEAN), model.tokenize(CORRUPT)
    fam = P.FAMILIES["resid_pre"]
    t = time.perf_counter()
    batched = P.exact_patch(model, clean, corrupt, m, fam, batch_size=args.batch_size)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    naive = P.exact_patch_naive(model, clean, corrupt, m, fam)
    t_naive = time.perf_counter() - t
    out["patching_resid_pre"] = {"cells": int(batched.size), "batched_s": t_batched, "naive_per_cell_s": t_naive,
                                 "speedup": t_naive / t_batched, "batch_size": args.batch_size,
                                 "max_abs_diff_batched_vs_naive": float(np.abs(batched - naive).max())}

    fams = list(P.FAMILIES.values())
    t = time.perf_counter()
    exact = {f.name: P.exact_patch(model, clean, corrupt, m, f, batch_size=args.batch_size) for f in fams}
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    atp = P.attribution_patch(model, clean, corrupt, m, fams)
    t_atp = time.perf_counter() - t
    with torch.no_grad():
        c, k = float(m(model.logits(clean))[0]), float(m(model.logits(corrupt))[0])
    corr = {f: P._pearson(exact[f], atp[f]) for f in exact}
    out["atp_vs_exact"] = {"cells": int(sum(v.size for v in exact.values())), "exact_batched_s": t_exact,
                           "atp_s": t_atp, "speedup": t_exact / t_atp, "pearson_r": corr,
                           "clean_metric": c, "corrupt_metric": k}

    out["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    if out["patching_resid_pre"]["max_abs_diff_batched_vs_naive"] > PATCH_ATOL:
        raise SystemExit(f"batched patching differs from the per-cell loop by more than {PATCH_ATOL}")


if __name__ == "__main__":
    main()
