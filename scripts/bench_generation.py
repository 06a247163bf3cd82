"""Generation speed: the same GSM8K / HumanEval requests through our backend and lm-eval's stock `hf` backend.

    .venv/bin/python scripts/bench_generation.py [--tasks gsm8k,humaneval] [--n 16] [--batch-size 8]
                                                 [--max-gen-toks N] [--model smollm2-135m]

Builds each task's lm-eval `generate_until` requests (GSM8K 5-shot, HumanEval 0-shot, greedy, the
tasks' own stop sequences) for a seeded subset of docs from the mirror, then times `generate_until`
over exactly those requests for lm-eval's stock HFLM and for the workbench backend in this process
(model load excluded; the two take turns on slices of the requests, so load changes on a shared
machine hit both), and prints generated tokens/s (returned text re-tokenised, as the run
manifest counts them), the ratio to lm-eval `hf`, and how many outputs are identical. Then it times our
backend on the same prompts with a budget of one token each: prefill alone, which lm-eval pays as well,
so lm-eval's time over it bounds the ratio any faster decoding could reach on these requests.
"""
from __future__ import annotations

import argparse
import os
import time

import workbench  # noqa: F401  (environment before torch)


def build_requests(task: str, n: int, seed: int, max_gen_toks: int | None):
    from workbench.eval import tasks as T

    built = T.build(T.resolve([task])[0], fewshot_seed=seed)
    ids = T.select_docs(task, len(built.task.eval_docs), limit=None, n=n, seed=seed)
    built.task.build_all_requests(samples=ids, rank=0, world_size=1)
    insts = sorted(built.task.instances, key=lambda x: x.doc_id)
    if max_gen_toks:
        for inst in insts:
            inst.arguments = (inst.arguments[0], dict(inst.arguments[1], max_gen_toks=max_gen_toks))
    return insts


def timed(lm, insts):
    """(wall seconds, CPU seconds of this process, outputs)."""
    t, c = time.perf_counter(), time.process_time()
    out = lm.generate_until(insts, disable_tqdm=True)
    return time.perf_counter() - t, time.process_time() - c, out


def interleaved(stock, ours, insts, rounds: int):
    """Both backends on the same consecutive slices of the requests, taking turns at going first, so a
    change in the machine's load (it is shared) hits both alike."""
    size = -(-len(insts) // rounds)
    acc = {"stock": [0.0, 0.0, []], "ours": [0.0, 0.0, []]}
    for r, start in enumerate(range(0, len(insts), size)):
        part = insts[start:start + size]
        order = [("stock", stock), ("ours", ours)]
        for name, lm in (order if r % 2 == 0 else order[::-1]):
            dt, dc, out = timed(lm, part)
            acc[name][0] += dt
            acc[name][1] += dc
            acc[name][2].extend(out)
    return acc["stock"], acc["ours"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="gsm8k,humaneval")
    ap.add_argument("--n", type=int, default=16, help="docs per task (seeded subset)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-gen-toks", type=int, help="cap every request's token budget (default: the task's)")
    ap.add_argument("--model", default="smollm2-135m", help="a gguf alias/file (both backends load its checkpoint)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--rounds", type=int, default=2,
                    help="slices the backends take turns on (default 2; fewer if a slice would hold less than a batch)")
    args = ap.parse_args()

    import torch
    from lm_eval.models.huggingface import HFLM

    from workbench.eval.models import load_model
    from workbench.eval.models.gguf import converted_checkpoint, resolve_gguf

    ckpt, _ = converted_checkpoint(resolve_gguf(args.model.removeprefix("gguf:")))
    stock = HFLM(pretrained=str(ckpt), dtype="float32", batch_size=args.batch_size, device="cpu")
    ours = load_model(args.model, batch_size=args.batch_size)
    print(f"{args.model}, greedy, batch size {args.batch_size}; torch threads {torch.get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared with other jobs)")
    print(f"{'task':<10} {'backend':<32} {'wall s':>8} {'CPU s':>8} {'tokens':>7} {'tok/s':>7} {'ratio':>6} "
          f"{'tok/CPU-s':>9} {'ratio':>6} {'identical':>10}")
    for task in args.tasks.split(","):
        insts = build_requests(task, args.n, args.seed, args.max_gen_toks)
        # a slice smaller than a batch would run neither backend at the batch size asked for
        rounds = max(1, min(args.rounds, len(insts) // args.batch_size))
        (base_t, base_c, base), (t, c, got) = interleaved(stock, ours, insts, rounds)
        count = lambda texts: sum(len(stock.tok_encode(s)) for s in texts)
        same = sum(a == b for a, b in zip(got, base))
        n_base, n_got = count(base), count(got)
        print(f"{task:<10} {'lm-eval hf (stock HFLM)':<32} {base_t:>8.2f} {base_c:>8.2f} {n_base:>7} "
              f"{n_base / base_t:>7.1f} {1.0:>5.2f}x {n_base / base_c:>9.1f} {1.0:>5.2f}x {'':>10}")
        print(f"{task:<10} {'workbench (continuous batching)':<32} {t:>8.2f} {c:>8.2f} {n_got:>7} {n_got / t:>7.1f} "
              f"{(n_got / t) / (n_base / base_t):>5.2f}x {n_got / c:>9.1f} {(n_got / c) / (n_base / base_c):>5.2f}x "
              f"{same:>4}/{len(insts):<5}")
        for k, (a, b) in enumerate(zip(got, base)):
            if a != b:
                print(f"  differs on request {k}: ours {a[:80]!r} / stock {b[:80]!r}")
        one = [type(x)(x.request_type, x.doc, (x.arguments[0], dict(x.arguments[1], max_gen_toks=1)), x.idx)
               for x in insts]
        pre_t, _, _ = timed(ours, one)
        print(f"{task:<10} {'workbench prefill alone':<32} {pre_t:>8.2f}   ({rounds} slice(s) of {-(-len(insts) // rounds)} "
              f"requests; lm-eval hf's time / prefill alone = {base_t / pre_t:.2f}x: the most any decoding speed-up "
              f"could reach here)")
    print("(CPU s: this process's CPU seconds, all threads: on a shared, loaded machine the wall-clock ratio is "
          "noisy; the CPU ratio compares the work each does, whatever the load)")
    ours.close()


if __name__ == "__main__":
    main()
