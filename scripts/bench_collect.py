"""Activation-corpus collection: throughput (tokens/s) and memory ceiling, each budget in a fresh process.

    PYTHONPATH=. python scripts/bench_collect.py [--model smollm2-135m] [--layers 15,25]
        [--sites resid_post,mlp_neurons] [--budgets 2048,8192] [--shard-tokens 2048] [--json OUT]

For each token budget a child process loads the model, runs the same documents through a plain HF
forward (no hooks, same batches: the baseline) and then collects them with `workbench.interp.collect`
into a temporary store; it reports both throughputs, their ratio, and its own peak resident memory
(ru_maxrss) after loading the model and after collecting. Memory is bounded when the peak does not
grow with the budget: it is the model plus one shard of float16 activations plus one batch.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

CHILD = r"""
import json, sys, tempfile, time, resource
import workbench  # noqa: F401  (environment first)
import torch
from workbench.interp.hooks import load_hooked
from workbench.interp.collect import _batches, _shard_plans, run
from workbench.interp.corpus import text_corpus
spec, layers, sites, budget, shard_tokens, batch_tokens = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
m = load_hooked(spec)
after_load = rss()
# baseline: the same documents and batches through a plain HF forward (up to the last layer collected)
tok = lambda t: m.tokenizer(t, add_special_tokens=True)["input_ids"]
docs = [d for shard in _shard_plans(text_corpus("mirror").documents("train"), tok, tokens=budget, max_len=256,
                                    shard_tokens=shard_tokens) for d in shard]
pad = m.tokenizer.pad_token_id or 0
t0 = time.perf_counter()
with torch.no_grad():
    for b in _batches(docs, batch_tokens):
        n = max(len(docs[i].ids) for i in b)
        x = torch.full((len(b), n), pad, dtype=torch.long)
        for j, i in enumerate(b):
            x[j, :len(docs[i].ids)] = torch.tensor(docs[i].ids)
        m.hf(x)
hf_s = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as tmp:
    r = run(m, layers=layers, sites=sites, tokens=budget, shard_tokens=shard_tokens, batch_tokens=batch_tokens,
            activations=tmp, progress=False)
print(json.dumps({"budget": budget, "tokens": r.n_tokens, "shards": r.n_shards, "collect_tokens_per_s": r.tokens_per_s,
                  "hf_forward_tokens_per_s": sum(len(d.ids) for d in docs) / hf_s,
                  "peak_rss_after_load_mb": after_load, "peak_rss_mb": rss()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="15,25")
    ap.add_argument("--sites", default="resid_post,mlp_neurons")
    ap.add_argument("--budgets", default="2048,8192")
    ap.add_argument("--shard-tokens", type=int, default=2048)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    sites = args.sites.split(",")
    out: dict[str, Any] = {"model": args.model, "layers": layers, "sites": sites, "shard_tokens": args.shard_tokens,
                           "batch_tokens": args.batch_tokens, "loadavg_start": os.getloadavg()[0], "runs": []}
    for budget in (int(b) for b in args.budgets.split(",")):
        res = subprocess.run([sys.executable, "-c", CHILD, args.model, json.dumps(layers), json.dumps(sites), str(budget),
                              str(args.shard_tokens), str(args.batch_tokens)], capture_output=True, text=True,
                             cwd=tempfile.gettempdir(), env=dict(os.environ))
        if res.returncode:
            sys.exit(f"child failed for budget {budget}:\n{res.stderr[-2000:]}")
        run = json.loads(res.stdout.strip().splitlines()[-1])
        run["collect_vs_hf"] = run["collect_tokens_per_s"] / run["hf_forward_tokens_per_s"]
        out["runs"].append(run)
        print(f"budget {budget:>7,}: collect {run['collect_tokens_per_s']:7.1f} tok/s, plain HF forward "
              f"{run['hf_forward_tokens_per_s']:7.1f} tok/s (ratio {run['collect_vs_hf']:.2f}); peak RSS "
              f"{run['peak_rss_mb']:,.0f} MB (after loading the model {run['peak_rss_after_load_mb']:,.0f} MB)", flush=True)
    out["loadavg_end"] = os.getloadavg()[0]
    peaks = [r["peak_rss_mb"] for r in out["runs"]]
    out["peak_rss_growth_mb"] = max(peaks) - min(peaks)
    print(f"peak memory across budgets: {min(peaks):,.0f}-{max(peaks):,.0f} MB (growth {out['peak_rss_growth_mb']:,.0f} MB "
          f"for a {out['runs'][-1]['budget'] / out['runs'][0]['budget']:.0f}x larger budget); load average "
          f"{out['loadavg_start']:.1f} -> {out['loadavg_end']:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
