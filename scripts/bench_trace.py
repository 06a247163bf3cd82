"""Causal tracing batched vs one forward per (cell, noise sample), in one process on one machine.

    PYTHONPATH=. python scripts/bench_trace.py [--model smollm2-135m] [--samples 3] [--kinds state] [--json OUT]

Traces one fact twice with the same seed: `--batch-size` (cell, sample) rows per forward, then one row per
forward (the per-cell loop a notebook would write). Both grids must agree; prints the wall times, their
ratio and the machine's load average (the box is shared: compare ratios, not absolute seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import workbench  # noqa: F401  (environment first)

FACT = ("The Eiffel Tower is located in the city of", "Eiffel Tower", " Paris")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--kinds", default="state", help="comma-separated: state,mlp,attn (default state)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import numpy as np

    from workbench.interp import trace
    from workbench.interp.hooks import load_hooked
    from workbench.interp.trace import Fact

    model = load_hooked(args.model)
    fact = Fact(*FACT)
    kinds = tuple(args.kinds.split(","))
    out = {"model": args.model, "samples": args.samples, "kinds": list(kinds), "batch_size": args.batch_size,
           "loadavg_start": os.getloadavg()[0]}
    runs = {}
    for name, bs in (("batched", args.batch_size), ("per_cell", 1)):
        t = time.perf_counter()
        runs[name] = trace.run(model, [fact], samples=args.samples, window=args.window, kinds=kinds, seed=0, batch_size=bs)
        out[f"{name}_s"] = time.perf_counter() - t
    n_tok = int(runs["batched"].facts["n_tokens"].iloc[0])
    start = int(runs["batched"].facts["subject_start"].iloc[0])
    out["rows"] = (1 + len(kinds) * model.n_layers * (n_tok - start)) * args.samples
    out["max_abs_diff"] = float(max(np.abs(runs["batched"].grid(k) - runs["per_cell"].grid(k)).max() for k in kinds))
    out["speedup"] = out["per_cell_s"] / out["batched_s"]
    out["loadavg_end"] = os.getloadavg()[0]
    print(f"{args.model}: {out['rows']} (cell, sample) rows; batched ({args.batch_size} rows/forward) "
          f"{out['batched_s']:.1f} s, per-cell loop {out['per_cell_s']:.1f} s: {out['speedup']:.1f}x; "
          f"max |diff| {out['max_abs_diff']:.2e}; load {out['loadavg_start']:.1f} -> {out['loadavg_end']:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
