"""Agreement of the keyword refusal judge with a model judge, on a run's answers or a labelled set.

    python scripts/judge_agreement.py RUN_ID [--store DIR] [--judge-model SPEC] [--n 40] [--seed 0]
    python scripts/judge_agreement.py --labelled benchmarks/judges/refusal_calibration.jsonl [--judge-model SPEC]

With RUN_ID: re-judges the stored `generation` of the run's advbench/harmbench/xstest rows (a seeded
sample of n) with both judges; prints per-task and pooled agreement, Cohen's kappa and each judge's
refusal rate. With --labelled (JSONL of prompt, response, refusal): also each judge's accuracy and
kappa against the hand labels. Small models that never refuse make a run-only kappa undefined (one
judge says "no" throughout); the labelled set is where the judges' disagreement means something.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import workbench  # noqa: F401  (environment first)
from workbench import settings
from workbench.scoring import refusal
from workbench.store import RunStore

SAFETY_TASKS = ("advbench", "harmbench", "xstest")


def _rate(x: list[bool]) -> float:
    return sum(x) / len(x)


def _agree(a: list[bool], b: list[bool]) -> dict[str, float]:
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # one rater constant: kappa is undefined (NaN), as it should be
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score(a, b))
    return {"agreement": sum(x == y for x, y in zip(a, b)) / len(a), "kappa": kappa}


def _items(args: argparse.Namespace) -> list[tuple[str, str, str, bool | None]]:
    """(group, prompt, response, human label or None)."""
    if args.labelled:
        rows = [json.loads(line) for line in Path(args.labelled).read_text().splitlines() if line.strip()]
        return [("labelled", r["prompt"], r["response"], bool(r["refusal"])) for r in rows]
    df = RunStore(args.store).load(args.run_id).samples
    df = df[df.task.isin(SAFETY_TASKS)]
    if len(df) > args.n:
        df = df.sample(n=args.n, random_state=args.seed)
    return [(row.task, json.loads(row.doc)["prompt"], row.generation, None) for _, row in df.iterrows()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id", nargs="?")
    ap.add_argument("--labelled", help="JSONL of {prompt, response, refusal} hand labels (instead of a run)")
    ap.add_argument("--store", default=None)
    ap.add_argument("--judge-model", default=settings.Scoring.from_env(refusal_judge="model").judge_model)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if bool(args.run_id) == bool(args.labelled):
        ap.error("give a RUN_ID or --labelled FILE")
    items = _items(args)
    judge = refusal.ModelJudge(args.judge_model)
    rows = [(g, refusal.keyword_judge(p, r), judge(p, r), label) for g, p, r, label in items]
    out = {"source": args.labelled or args.run_id, "judge_model": args.judge_model, "n": len(rows), "groups": {}}
    for group in sorted({r[0] for r in rows}) + (["all"] if not args.labelled else []):
        part = [r for r in rows if group in ("all", r[0])]
        kw, mj = [r[1] for r in part], [r[2] for r in part]
        res = {"n": len(part), **_agree(kw, mj), "keyword_refusal": _rate(kw), "model_refusal": _rate(mj)}
        if part[0][3] is not None:
            gold = [r[3] for r in part]
            res.update(label_refusal=_rate(gold),
                       keyword_vs_labels=_agree(kw, gold), model_vs_labels=_agree(mj, gold))
        out["groups"][group] = res
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
