"""Scoring speed: the same loglikelihood requests through our backends and lm-eval's stock `hf` backend.

    .venv/bin/python scripts/bench_scoring.py [--task mmlu|mmlu_cloze|arc_easy|arc_challenge] [--items 40]
                                              [--subjects N] [--fewshot K] [--batch-size 8] [--llamacpp]

Builds lm-eval's requests for a seeded set of items from the mirror once (MMLU: 5-shot lettered,
subject-stratified; `--subjects 1` = items of one whole subject, as a full run scores them; MMLU-cloze
and ARC: 0-shot, the answer texts as continuations), then times `loglikelihood` over exactly those
requests for each backend in this process (model load excluded; the backends take turns on slices
of the items, so load changes on a shared machine hit both), and prints items/s, the ratio to
lm-eval `hf`, and per-item agreement of the chosen answer and log-likelihoods.
"""
from __future__ import annotations

import argparse
import os
import random
import time

import workbench  # noqa: F401  (environment before torch)


def build_requests(task: str, n_items: int, fewshot: int | None, seed: int, n_subjects: int | None = None):
    from workbench.eval import tasks as T

    subjects = T.groups().get(task, [task])
    rng = random.Random(seed)
    picked = sorted(rng.sample(subjects, min(n_subjects or n_items, n_items, len(subjects))))
    per = dict.fromkeys(picked, 0)
    for i in range(n_items):
        per[picked[i % len(picked)]] += 1
    docs = []
    for name, k in per.items():
        built = T.build(T.resolve([name])[0], num_fewshot=fewshot)
        ids = T.select_docs(name, len(built.task.eval_docs), limit=None, n=k, seed=seed)
        built.task.build_all_requests(samples=ids, rank=0, world_size=1)
        by_doc: dict[int, list] = {}
        for inst in built.task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        docs.extend(sorted(v, key=lambda x: x.idx) for v in by_doc.values())
    return docs


def time_backend(lm, docs):
    """(wall seconds, CPU seconds of this process, per-item log-likelihoods)."""
    flat = [inst for d in docs for inst in d]
    t, c = time.perf_counter(), time.process_time()
    res = lm.loglikelihood(flat, disable_tqdm=True)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    out, k = [], 0
    for d in docs:
        out.append([r[0] for r in res[k: k + len(d)]])
        k += len(d)
    return dt, dc, out


def interleaved(backends: dict, docs, rounds: int) -> dict:
    """Time every backend on the same consecutive slices of the items, alternating which goes first, so
    a change in the machine's load (it is shared) hits all of them alike. {name: (wall s, CPU s, lls)}."""
    out = {name: [0.0, 0.0, []] for name in backends}
    size = -(-len(docs) // rounds)
    for r, start in enumerate(range(0, len(docs), size)):
        names = list(backends) if r % 2 == 0 else list(reversed(backends))
        for name in names:
            dt, dc, lls = time_backend(backends[name], docs[start:start + size])
            out[name][0] += dt
            out[name][1] += dc
            out[name][2].extend(lls)
    return {name: tuple(v) for name, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mmlu", help="mmlu (lettered), mmlu_cloze, arc_easy, arc_challenge, ...")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--fewshot", type=int, help="override the task's few-shot count (MMLU: 5)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--subjects", type=int, help="draw the items from this many subjects (default: one item each, "
                    "as the quick suite; fewer subjects = more shared few-shot preamble, as a full run)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--llamacpp", action="store_true", help="also time the llamacpp backend")
    ap.add_argument("--rounds", type=int, default=4, help="slices the backends take turns on (default 4)")
    args = ap.parse_args()

    import numpy as np
    from lm_eval.models.huggingface import HFLM

    from workbench.eval.models import load_model
    from workbench.eval.models.embedded import gguf_path
    from workbench.eval.models.gguf import converted_checkpoint

    docs = build_requests(args.task, args.items, args.fewshot, args.seed, args.subjects)
    n_req = sum(len(d) for d in docs)
    ckpt, _ = converted_checkpoint(gguf_path("smollm2-135m"))

    stock = HFLM(pretrained=str(ckpt), dtype="float32", batch_size=args.batch_size, device="cpu")
    ctx_tokens = np.mean([len(stock.tok_encode(d[0].args[0])) for d in docs])
    backends = {"lm-eval hf (stock HFLM)": stock,
                "workbench gguf (fp32, prefix-shared)": load_model("smollm2-135m", batch_size=args.batch_size)}
    if args.llamacpp:
        backends["workbench llamacpp (Q4_1)"] = load_model("llamacpp:smollm2-135m")
    results = interleaved(backends, docs, args.rounds)

    base_t, base_c, base = results["lm-eval hf (stock HFLM)"]
    shots = f"{args.fewshot}-shot" if args.fewshot is not None else "task's few-shot"
    print(f"SmolLM2-135M-Instruct, {args.task} ({shots}): {len(docs)} items from "
          f"{min(args.subjects or len(docs), len(docs))} subject(s), {n_req} requests, "
          f"mean context {ctx_tokens:.0f} tokens; torch threads {__import__('torch').get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'backend':<38} {'wall s':>8} {'items/s':>8} {'speed-up':>9} {'CPU s':>8} {'speed-up':>9} "
          f"{'same answer':>12} {'max |dll|':>10}")
    for name, (dt, dc, lls) in results.items():
        agree = np.mean([int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(lls, base)])
        diff = max(float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(lls, base))
        print(f"{name:<38} {dt:>8.2f} {len(docs) / dt:>8.2f} {base_t / dt:>8.2f}x {dc:>8.2f} {base_c / dc:>8.2f}x "
              f"{agree:>12.3f} {diff:>10.2e}")
    print("(CPU s: this process's CPU seconds, all threads: on a shared, loaded machine the wall-clock ratio is "
          "noisy; the CPU ratio compares the work each does, whatever the load)")


if __name__ == "__main__":
    main()
