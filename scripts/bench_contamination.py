"""Contamination scan speed: the workbench's streamed, hashed n-gram matching against lm-eval's own way
(normalise each document with the Janitor, build its 13-grams with `janitor.word_ngrams`, look each
up in a set of the items' 13-grams), on the same corpus and items, in this process.

    .venv/bin/python scripts/bench_contamination.py [--mb 20] [--items 2000] [--ngram 13] [--seed 0]

The corpus is synthetic JSONL (documents of words drawn from MMLU test questions, so n-gram hits
occur); the items are MMLU test items as `workbench contamination` checks them (zero-shot
doc_to_text). Prints words/s of each, their ratio, and checks both flag the same items.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import workbench  # noqa: F401  (environment first)
from workbench.eval import contamination as C
from workbench.eval import tasks as T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=20.0, help="corpus size in MB")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--ngram", type=int, default=13)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    texts = []
    for spec in T.resolve(["mmlu"]):
        task = T.build(spec).task
        texts += [C.item_text(task, d)[0] for d in task.eval_docs]
    items = rng.sample(texts, min(args.items, len(texts)))
    vocab = " ".join(texts).split()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        size = 0
        with open(path, "w", encoding="utf-8") as fh:
            while size < args.mb * 1e6:
                if rng.random() < 0.01:   # now and then an item verbatim inside a document
                    doc = " ".join(rng.choices(vocab, k=50)) + " " + rng.choice(items)
                else:
                    doc = " ".join(rng.choices(vocab, k=rng.randint(50, 400)))
                line = json.dumps({"text": doc}) + "\n"
                fh.write(line)
                size += len(line.encode())
        t0 = time.perf_counter()
        index = C.NgramIndex(items, args.ngram)
        info = C.scan_corpus(index, C.corpus_files([path]))
        ours_s = time.perf_counter() - t0
        ours = index.item_counts()[1] > 0

        t0 = time.perf_counter()
        norm = C.normalizer()
        jan = C._janitor_module()
        item_grams = [C.item_ngrams(t, args.ngram) for t in items]
        lookup = set().union(*item_grams)
        found = set()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                found.update(g for g in jan.word_ngrams(norm(json.loads(line)["text"]), args.ngram) if g in lookup)
        ref_s = time.perf_counter() - t0
        ref = [bool(g & found) for g in item_grams]
    words = info["words"]
    print(f"corpus {size / 1e6:.1f} MB, {info['documents']} documents, {words} words; {len(items)} items, "
          f"{len(lookup)} item {args.ngram}-grams")
    print(f"workbench scan : {ours_s:7.2f} s  {words / ours_s:12.0f} words/s (index build included)")
    print(f"lm-eval's way  : {ref_s:7.2f} s  {words / ref_s:12.0f} words/s")
    print(f"ratio {ref_s / ours_s:.2f}x; same items flagged: {list(ours) == ref} ({sum(ref)} flagged)")


if __name__ == "__main__":
    main()
