"""`workbench contamination --corpus PATH --tasks ...`: flag benchmark items whose n-grams occur in a corpus."""
from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.argtypes import csv, float_in, int_at_least, path, rng_seed
from workbench.commands import command
from workbench.commands._common import DATA, JSON, STORE, json_safe
from workbench.store.samples import fmt


def _print_result(result: Any) -> None:
    m = result.manifest
    corpus = m["corpus"]
    print(f"contamination result: {result.result_id}")
    print(f"corpus: {len(corpus['files'])} file(s), {corpus['documents']} documents, {corpus['words']} words, "
          f"{corpus['scan_s']:.1f} s ({fmt(corpus['words_per_s'], '.0f')} words/s); {m['ngram']}-grams, "
          f"contaminated = {m['rule']}")
    print(f"{'task':<40} {'items':>6} {'tested':>6} {'contam.':>7} {'overlap':>8}"
          + (f" {'Min-K%':>8}" if m.get("model") else ""))
    for task, s in m["summary"].items():
        print(f"{task:<40} {s['items']:>6} {s['tested']:>6} {s['contaminated']:>7} {fmt(s['mean_overlap']):>8}"
              + (f" {fmt(s.get('mean_mink_prob')):>8}" if m.get("model") else ""))
    mem = m.get("membership")
    if mem:
        f = mem["flag"]
        print(f"labels: {mem['n_labelled']} items, {mem['n_members']} members; n-gram flag precision "
              f"{fmt(f['precision'])}, recall {fmt(f['recall'])}")
        for name in ("auroc_mink_prob", "auroc_overlap"):
            if name in mem:
                e = mem[name]
                print(f"  {name}: {fmt(e['value'])} [{fmt(e['ci95_low'])}, {fmt(e['ci95_high'])}]")


def cmd_contamination(args: argparse.Namespace) -> int:
    from workbench.store.contamination import ContaminationStore

    if args.list:
        results = ContaminationStore(args.store).list()
        if args.json:
            print(json.dumps(json_safe([{k: m.get(k) for k in ("id", "created", "ngram", "rule", "summary")}
                                        for m in results]), indent=2))
        for m in [] if args.json else results:
            tasks = ", ".join(m.get("summary", {}))
            print(f"{m['id']:<48} {m.get('created', '')}  {m.get('ngram')}-grams  {tasks[:60]}")
        return 0

    from workbench.eval.contamination import ContaminationRequest, run_contamination

    req = ContaminationRequest(
        corpus=args.corpus or [], tasks=csv(args.tasks) if args.tasks else [], suite=args.suite, run=args.run,
        limit=args.limit, num_fewshot=args.num_fewshot, seed=args.seed, data_dir=args.data_dir, ngram=args.ngram,
        min_overlap=args.min_overlap, ignore_shared=args.ignore_shared, text_field=args.text_field, model=args.model,
        mink_k=args.mink_k, labels=args.labels, batch_size=args.batch_size)
    result = run_contamination(req, store=args.store, progress=not args.no_progress)
    if args.json:
        print(json.dumps(json_safe({"id": result.result_id, **{k: result.manifest.get(k) for k in
                                    ("ngram", "rule", "corpus", "summary", "membership", "model")}}), indent=2))
    else:
        _print_result(result)
    return 0


@command("contamination", order=37)
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "contamination", parents=[STORE, DATA, JSON],
        help="flag benchmark items whose n-grams occur in a corpus (and Min-K%% Prob membership scores)",
        description="Stream a corpus (text, JSONL or Parquet files, or directories of them; any size, bounded memory) "
                    "and flag the benchmark items any of whose word n-grams occur in it, with lm-eval's "
                    "decontamination normalisation (13-grams by default). With --model, also score each item's "
                    "Min-K%% Prob (Shi et al. 2024); with --labels, report AUROC and the flag's precision/recall. "
                    "The per-item table is stored beside the runs (joinable by task, doc_id, prompt_hash); "
                    "`workbench compare ... --contamination ID` then splits accuracy into clean and contaminated items.",
        epilog="Examples:\n  workbench contamination --corpus data/ --tasks mmlu,arc_easy\n"
               "  workbench contamination --corpus web.jsonl --run RUN_ID --model smollm2-135m --labels labels.jsonl\n"
               "  workbench contamination --list",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", action="append", type=path, metavar="PATH",
                   help="a corpus file or directory (.txt/.md text, .jsonl, .parquet); repeat for several")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--tasks", help="comma-separated task or group names (as `workbench eval --tasks`)")
    sel.add_argument("--suite", help="a named suite (its seeded subsets, as `workbench eval --suite`)")
    sel.add_argument("--run", metavar="RUN_ID", help="the items of a stored run (joins it exactly)")
    p.add_argument("--limit", type=int_at_least(1), help="the first N docs of each task")
    p.add_argument("--num-fewshot", type=int_at_least(0), help="few-shot count of the prompts to key items by")
    p.add_argument("--seed", type=rng_seed, default=1234, help="seed of subsets and few-shot draws, as in eval (default 1234)")
    p.add_argument("--ngram", type=int_at_least(1), default=13, help="n-gram size in words (default 13, as lm-eval)")
    p.add_argument("--min-overlap", type=float_in(0, 1), default=0.0,
                   help="flag an item when at least this share of its n-grams occur (default 0: any one, as lm-eval)")
    p.add_argument("--ignore-shared", type=int_at_least(1), metavar="K",
                   help="ignore n-grams found in more than K documents of the benchmark itself (templates, shared "
                        "passages); default: none ignored, as lm-eval")
    p.add_argument("--text-field", default="text", help="the text field of JSONL records / Parquet rows (default text)")
    p.add_argument("--model", help="also score Min-K%% Prob with this model (hf:, gguf:, int8: or an alias)")
    p.add_argument("--mink-k", type=float_in(0, 1, low_open=True), default=0.2,
                   help="share of lowest-probability tokens Min-K%% Prob averages (default 0.2)")
    p.add_argument("--labels", type=path, help="membership labels (JSONL or CSV: task, doc_id, member) for AUROC and precision/recall")
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="texts per forward pass for Min-K%% (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the stored contamination results and exit")
    p.set_defaults(func=cmd_contamination)
