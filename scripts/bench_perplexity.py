"""Perplexity speed and agreement: our hf backend's rolling log-likelihood vs lm-eval's stock `hf`.

    .venv/bin/python scripts/bench_perplexity.py [--model smollm2-135m] [--task perplexity_code] [--docs 40]
                                                 [--batch-size 8] [--repeats 2] [--seed 1234]

Takes a seeded subset of a perplexity task's documents from the mirror, then times `loglikelihood_rolling`
over exactly those documents for lm-eval's HFLM and for our backend in this process (model load excluded;
the two alternate, `--repeats` times each, and the best time counts, which evens out a busy machine),
and prints scored tokens/s, their ratio, and the largest relative difference of the per-document
log-likelihoods and of the weighted word perplexity.
"""
from __future__ import annotations

import argparse
import time

import workbench  # noqa: F401  (environment before torch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="an embedded alias (smollm2-135m, gemma3-270m)")
    ap.add_argument("--task", default="perplexity_code")
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8, help="lm-eval hf: windows per forward pass")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    import numpy as np
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import weighted_perplexity
    from lm_eval.models.huggingface import HFLM

    from workbench.eval import tasks as T
    from workbench.eval.models import load_model
    from workbench.eval.models.embedded import gguf_path
    from workbench.eval.models.gguf import converted_checkpoint

    built = T.build(T.resolve([args.task])[0])
    ids = T.select_docs(args.task, len(built.task.eval_docs), limit=None, n=args.docs, seed=args.seed)
    texts = [built.task.eval_docs[i]["text"] for i in ids]
    reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=0) for t in texts]
    words = [len(t.split()) or 1 for t in texts]

    ckpt, _ = converted_checkpoint(gguf_path(args.model))
    stock = HFLM(pretrained=str(ckpt), dtype="float32", batch_size=args.batch_size, device="cpu")
    ours = load_model(args.model)
    ours._vocab_head()  # its one-off check, outside the timing
    tokens = sum(len(stock.tok_encode(t)) for t in texts)
    best = {"stock": float("inf"), "ours": float("inf")}
    for _ in range(args.repeats):
        for name, lm in (("stock", stock), ("ours", ours)):
            t = time.perf_counter()
            out = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
            best[name] = min(best[name], time.perf_counter() - t)
            if name == "stock":
                ref = out
            else:
                got = out
    t_stock, t_ours = best["stock"], best["ours"]

    rel = np.abs(np.array(got) - np.array(ref)) / np.abs(np.array(ref))
    ppl = [weighted_perplexity(list(zip(x, words))) for x in (got, ref)]
    print(f"{args.model} on {len(texts)} documents of {args.task} ({tokens} tokens, seed {args.seed})")
    print(f"  lm-eval hf (batch {args.batch_size}): {t_stock:7.1f} s  {tokens / t_stock:8.0f} tokens/s")
    print(f"  workbench hf              : {t_ours:7.1f} s  {tokens / t_ours:8.0f} tokens/s  "
          f"({t_stock / t_ours:.2f}x lm-eval)")
    print(f"  max relative difference: per-document loglikelihood {rel.max():.1e}, "
          f"word perplexity {abs(ppl[0] - ppl[1]) / ppl[1]:.1e}")


if __name__ == "__main__":
    main()
