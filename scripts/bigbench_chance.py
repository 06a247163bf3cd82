"""BIG-bench accuracy against chance, per task, from a stored run.

    .venv/bin/python scripts/bigbench_chance.py RUN_ID [--store DIR]

For each `bigbench_*` task of the run: accuracy with its 95% bootstrap CI (from metrics.json), the
chance level of the items evaluated (lm-eval's `acc` credits one target choice, so chance is the mean of
1/number-of-choices), and an exact one-sided binomial test of "better than chance" (Poisson-binomial
mean approximated by the plain binomial at the mean chance). Generative tasks have no chance level.
"""
from __future__ import annotations

import argparse

import workbench  # noqa: F401  (environment first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id")
    ap.add_argument("--store")
    args = ap.parse_args()

    from scipy.stats import binomtest

    from workbench.store import RunStore
    from workbench.store.samples import fmt

    run = RunStore(args.store).load(args.run_id)
    df = run.samples
    print(f"{run.manifest['model']['spec']} ({args.run_id})")
    print(f"{'task':<52} {'n':>4} {'acc':>6} {'95% CI':<15} {'chance':>6} {'p(>chance)':>10}")
    for task in [t for t in dict.fromkeys(df["task"]) if str(t).startswith("bigbench_")]:
        part = df[df["task"] == task]
        m = run.metrics["tasks"][task]
        if "acc" in m:
            e, chance = m["acc"], float((1.0 / part["choices"].map(len)).mean())
            p = binomtest(int(round(e["value"] * e["n"])), e["n"], chance, alternative="greater").pvalue
            print(f"{task:<52} {e['n']:>4} {fmt(e['value']):>6} [{fmt(e['ci95_low'])}, {fmt(e['ci95_high'])}]"
                  f"  {chance:>6.3f} {p:>10.3g}")
        else:
            e = m["exact_match"]
            print(f"{task:<52} {e['n']:>4} {fmt(e['value']):>6} [{fmt(e['ci95_low'])}, {fmt(e['ci95_high'])}]"
                  f"  {'-':>6} {'-':>10}  (exact match)")
    g = run.metrics.get("groups", {}).get("bigbench", {}).get("acc")
    if g:
        print(f"{'[bigbench] pooled multiple choice':<52} {g['n']:>4} {fmt(g['value']):>6} "
              f"[{fmt(g['ci95_low'])}, {fmt(g['ci95_high'])}]")


if __name__ == "__main__":
    main()
