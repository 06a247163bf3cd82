"""Planted contamination check for `workbench contamination`: how well the n-gram flag and Min-K% Prob
find MMLU test items that a corpus is known to contain.

    python scripts/planted_contamination.py [--model smollm2-135m] [--limit 4] [--seed 0] [--out DIR] [--full]

The corpus (JSONL, written under --out) holds 2,000 GSM8K training questions as unrelated documents,
50 MMLU test items quoted verbatim (question, lettered options and answer, as a quiz page would) and
50 others paraphrased by the deterministic rewording below (question openers rewritten, a fixed
synonym table applied to question and options, options reversed and renumbered, no answer line). The 100 planted items are drawn
(seeded) from the first --limit test items of every subject; the rest of those items are the
negatives. The scan is the real command on the items `--tasks mmlu --limit N` selects, with Min-K%
Prob from --model and the planted set as membership labels, then again (n-grams only) ignoring
n-grams that more than --ignore-shared MMLU items share (templates such as moral scenarios' preamble);
--full scans all 14,042 MMLU test items under both rules for the flag's precision over the whole
benchmark.

Min-K% Prob measures membership in the *model's* training data. The embedded models never saw this
planted corpus, so its AUROC against these labels measures nothing the corpus did: it is reported to
show exactly that (near 0.5 unless a model happens to know the drawn items better).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import workbench  # noqa: F401  (environment first)
from workbench import settings
from workbench.eval import tasks as T
from workbench.eval.contamination import ContaminationRequest, run_contamination

OPENERS = [  # (pattern at the start of a question, rewording)
    (r"^Which of the following is (not|NOT) ", r"Name the option that is \1 "),
    (r"^Which of the following ", "Among the options given, which one "),
    (r"^Which one of the following ", "Among the options given, which one "),
    (r"^What is the ", "Identify the "),
    (r"^What are the ", "Identify the "),
    (r"^What is ", "Say what is "),
    (r"^Which ", "What "),
    (r"^The ", "This: the "),
    (r"^In ", "Within "),
]
SYNONYMS = {
    "following": "subsequent", "best": "most accurately", "describes": "characterizes", "correct": "right",
    "true": "accurate", "false": "untrue", "statement": "claim", "statements": "claims", "example": "instance",
    "used": "employed", "use": "employ", "called": "termed", "known": "recognized", "because": "since",
    "however": "but", "important": "significant", "large": "big", "small": "little", "increase": "rise",
    "decrease": "decline", "increases": "rises", "decreases": "declines", "cause": "produce", "causes": "produces",
    "person": "individual", "people": "individuals", "show": "demonstrate", "shows": "demonstrates",
    "many": "numerous", "often": "frequently", "usually": "typically", "also": "additionally", "about": "regarding",
    "most": "the majority of", "would": "will", "could": "might", "likely": "probably", "primary": "main",
    "answer": "response", "question": "query", "between": "amid", "within": "inside", "result": "outcome",
    "results": "outcomes", "process": "procedure", "found": "located", "first": "initial", "main": "principal",
    "major": "chief", "type": "kind", "types": "kinds", "different": "distinct", "given": "provided",
    "find": "determine", "patient": "individual under care", "following,": "subsequent,",
}


def reword(text: str) -> str:
    """Word-for-word substitution from the synonym table (capitalisation and trailing punctuation kept)."""
    words = []
    for w in text.split():
        core = w.rstrip(".,;:?!")
        sub = SYNONYMS.get(core.lower())
        if sub:
            sub = sub[0].upper() + sub[1:] if core[:1].isupper() else sub
            w = sub + w[len(core):]
        words.append(w)
    return " ".join(words)


def paraphrase(question: str, choices: list[str]) -> str:
    """A deterministic rewording: opener template, synonyms in question and options, options reversed and
    numbered, no answer line."""
    q = question.strip()
    for pattern, repl in OPENERS:
        if re.match(pattern, q):
            q = re.sub(pattern, repl, q, count=1)
            break
    options = "; ".join(f"option {i + 1}: {reword(c)}" for i, c in enumerate(reversed(choices)))
    return reword(q) + f"\nPossible responses — {options}."


def verbatim(question: str, choices: list[str], answer: int) -> str:
    return (f"Quiz question: {question}\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(choices))
            + f"\nAnswer: {'ABCD'[answer]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=4, help="first N test items of each subject are the candidates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="planted-contamination", help="corpus, labels and the store go here")
    ap.add_argument("--full", action="store_true", help="also scan every MMLU test item (n-grams only)")
    ap.add_argument("--ignore-shared", type=int, default=10,
                    help="the stricter rule's K: n-grams in more than K MMLU test items are boilerplate")
    args = ap.parse_args()
    out = Path(args.out)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    store = out / "store"

    candidates = []
    for spec in T.resolve(["mmlu"]):
        docs = T.build(spec).task.eval_docs
        candidates += [(spec.name, i, docs[i]) for i in range(min(args.limit, len(docs)))]
    rng = random.Random(args.seed)
    planted = rng.sample(candidates, 100)
    kinds = {(t, i): ("verbatim" if k < 50 else "paraphrased") for k, (t, i, _) in enumerate(planted)}
    texts = [verbatim(d["question"], d["choices"], int(d["answer"])) if k < 50 else paraphrase(d["question"], d["choices"])
             for k, (_, _, d) in enumerate(planted)]
    with open(settings.data_dir() / "gsm8k" / "train.jsonl", encoding="utf-8") as fh:
        filler = [json.loads(line)["question"] for _, line in zip(range(2000), fh)]
    docs = filler + texts
    random.Random(args.seed + 1).shuffle(docs)
    corpus = out / "corpus" / "web.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    labels = out / "labels.jsonl"
    labels.write_text("".join(json.dumps({"task": t, "doc_id": i, "member": int((t, i) in kinds)}) + "\n"
                              for t, i, _ in candidates), encoding="utf-8")
    print(f"corpus {corpus}: {len(filler)} GSM8K questions + 50 verbatim + 50 paraphrased MMLU items; "
          f"{len(candidates)} candidate items, labels {labels}")
    example = next(k for k, (t, i, _) in enumerate(planted) if kinds[(t, i)] == "paraphrased")
    print("paraphrase example:\n  " + planted[example][2]["question"] + "\n  -> " + texts[example].replace("\n", "\n     "))

    t0 = time.time()
    res = run_contamination(ContaminationRequest(corpus=[str(corpus)], tasks=["mmlu"], limit=args.limit,
                                                 model=args.model, labels=str(labels)), store=store, progress=False)
    wall = time.time() - t0
    items = res.items.set_index(["task", "doc_id"])
    flagged = items["contaminated"].fillna(False)
    for kind in ("verbatim", "paraphrased"):
        keys = [k for k, v in kinds.items() if v == kind]
        tested = items.loc[keys, "contaminated"].notna().sum()
        print(f"recall on {kind}: {int(flagged.loc[keys].sum())}/{len(keys)} ({tested} testable: >= 13 words)")
    mem = res.manifest["membership"]
    print(f"result {res.result_id} ({wall:.0f} s with Min-K% on {args.model}): n-gram flag precision "
          f"{mem['flag']['precision']:.3f}, recall {mem['flag']['recall']:.3f} over {mem['n_labelled']} items")
    for name in ("auroc_mink_prob", "auroc_overlap"):
        e = mem[name]
        print(f"  {name}: {e['value']:.3f} [{e['ci95_low']:.3f}, {e['ci95_high']:.3f}]")
    by_kind = {}
    for kind in ("verbatim", "paraphrased"):
        keys = [k for k, v in kinds.items() if v == kind]
        by_kind[kind] = float(items.loc[keys, "mink_prob"].mean())
    neg = items.loc[[k for k in items.index if k not in kinds], "mink_prob"].mean()
    print(f"  mean Min-K% Prob: verbatim items {by_kind['verbatim']:.3f}, paraphrased {by_kind['paraphrased']:.3f}, "
          f"not planted {neg:.3f}")
    strict = run_contamination(ContaminationRequest(corpus=[str(corpus)], tasks=["mmlu"], limit=args.limit,
                                                    labels=str(labels), ignore_shared=args.ignore_shared), store=store)
    f = strict.manifest["membership"]["flag"]
    print(f"with --ignore-shared {args.ignore_shared} ({strict.manifest['n_ignored_ngrams']} benchmark-boilerplate "
          f"n-grams left out): precision {f['precision']:.3f}, recall {f['recall']:.3f}")
    if args.full:
        for shared in (None, args.ignore_shared):
            t0 = time.time()
            full = run_contamination(ContaminationRequest(corpus=[str(corpus)], tasks=["mmlu"], ignore_shared=shared),
                                     store=store)
            hit = full.items["contaminated"].fillna(False).to_numpy(bool)
            planted_mask = [(t, int(d)) in kinds for t, d in zip(full.items["task"], full.items["doc_id"])]
            tp = int(sum(h and p for h, p in zip(hit, planted_mask)))
            print(f"full MMLU ({len(hit)} items, {time.time() - t0:.0f} s, corpus {full.manifest['corpus']['words_per_s']:.0f}"
                  f" words/s), {full.manifest['rule']}: flagged {int(hit.sum())}, of which planted {tp}: precision "
                  f"{tp / max(hit.sum(), 1):.3f}, recall {tp / 100:.2f}")


if __name__ == "__main__":
    main()
