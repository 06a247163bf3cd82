"""Agreement of the keyword refusal judge with a model judge on a run's stored safety answers.

    python scripts/judge_agreement.py RUN_ID [--store DIR] [--judge-model SPEC] [--n 40] [--seed 0]

Re-judges the stored `generation` of every advbench/harmbench/xstest row (a seeded sample of n)
with both judges; prints per-task and pooled agreement, Cohen's kappa and each judge's refusal rate.
"""
from __future__ import annotations

import argparse
import json
import os

import workbench  # noqa: F401  (environment first)
from workbench import refusal
from workbench.store import RunStore

SAFETY_TASKS = ("advbench", "harmbench", "xstest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id")
    ap.add_argument("--store", default=None)
    ap.add_argument("--judge-model", default=os.environ.get("WORKBENCH_JUDGE_MODEL", "smollm2-135m"))
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = RunStore(args.store).load(args.run_id).samples
    df = df[df.task.isin(SAFETY_TASKS)]
    if len(df) > args.n:
        df = df.sample(n=args.n, random_state=args.seed)
    judge = refusal.ModelJudge(args.judge_model)
    rows = []
    for _, row in df.iterrows():
        prompt = json.loads(row.doc)["prompt"]
        rows.append((row.task, refusal.keyword_judge(prompt, row.generation), judge(prompt, row.generation)))
    out = {"run_id": args.run_id, "judge_model": args.judge_model, "n": len(rows), "tasks": {}}
    for task in sorted({r[0] for r in rows}) + ["all"]:
        part = [r for r in rows if task in ("all", r[0])]
        kw, mj = [r[1] for r in part], [r[2] for r in part]
        out["tasks"][task] = {"n": len(part), "agreement": sum(a == b for a, b in zip(kw, mj)) / len(part),
                              "kappa": refusal.cohens_kappa(kw, mj), "keyword_refusal": sum(kw) / len(part),
                              "model_refusal": sum(mj) / len(part)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
