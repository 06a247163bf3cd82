"""`workbench compare RUN_A RUN_B [RUN_C ...]`: paired statistics and a self-contained report."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

STORE_HELP = "run store directory (default: $WORKBENCH_STORE, else ./workbench-runs)"


def json_safe(obj: Any) -> Any:
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.compare import compare_runs, load_runs
    from workbench.report import write_report

    comparison = compare_runs(load_runs(args.runs, args.store), correction=args.correction, seed=args.seed)
    paths = write_report(comparison, args.out, alpha=args.alpha)
    if args.json:
        print(json.dumps(json_safe(dict(comparison.to_json(), report={"html": str(paths.html),
                                                                       "markdown": str(paths.markdown)})), indent=2))
        return 0
    shown = None
    for p in comparison.paired:
        if p.primary:
            if p.candidate != shown:
                shown = p.candidate
                print(f"{p.baseline} -> {p.candidate}")
            s = p.stats
            label = f"[{p.scope.name}]" if p.scope.kind == "group" else p.scope.name
            print(f"  {label:<34} {p.metric:<8} n={s.n:<5} {s.mean_a:.3f} -> {s.mean_b:.3f}  Δ={s.delta:+.3f} "
                  f"[{s.ci95_low:+.3f}, {s.ci95_high:+.3f}]  p={s.p_value:.3g}  p_{comparison.correction}={p.p_adjusted:.3g}")
    print(f"report: {paths.html}\n        {paths.markdown}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="paired comparison of runs on the same items, with an HTML/Markdown report",
        description="Compare runs item by item (matched by task, doc_id and prompt hash); every run after the first "
                    "is compared with the first. Writes a self-contained HTML report (opens offline) and Markdown: "
                    "leaderboard with CIs, paired deltas with McNemar/permutation p-values corrected across tasks, "
                    "a forest plot, flipped items and a manifest diff.",
        epilog="Example: workbench compare RUN_A RUN_B --out reports/ --json")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids; the first is the baseline")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--out", default="reports", help="report directory (default: reports/)")
    p.add_argument("--json", action="store_true", help="print the paired statistics per task as JSON")
    p.add_argument("--correction", default="holm", choices=["holm", "bh", "bonferroni", "none"],
                   help="multiple-comparison correction across tasks and subjects (default holm)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level marked in the report (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_compare)
