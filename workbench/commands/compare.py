"""`workbench compare RUN_A RUN_B [RUN_C ...]`: paired statistics and a self-contained report."""
from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.analysis.stats import CORRECTIONS
from workbench.argtypes import float_in, path, rng_seed
from workbench.commands import command
from workbench.commands._common import JSON, STORE, json_safe


def compare_and_report(run_ids: list[str], args: argparse.Namespace, seed: int) -> int:
    """Compare stored runs (the first is the baseline), write the report, print the paired deltas or JSON."""
    from workbench.analysis.calibration import calibration_rows
    from workbench.analysis.compare import compare_runs, load_runs
    from workbench.analysis.contamination import split_by_contamination
    from workbench.analysis.report import report_dir, write_report
    from workbench.store.contamination import ContaminationStore

    report_dir(args.out)  # an unwritable --out fails before the comparison is computed
    contamination = getattr(args, "contamination", None)  # `workbench sweep` has no such flag
    result = ContaminationStore(args.store).load(contamination) if contamination else None
    comparison = compare_runs(load_runs(run_ids, args.store), correction=args.correction, seed=seed,
                              allow_config_diff=args.allow_config_diff)
    calibration = calibration_rows(comparison, seed=seed)
    split = split_by_contamination(comparison, result, seed=seed) if result is not None else None
    paths = write_report(comparison, args.out, alpha=args.alpha, calibration=calibration, contamination=split)
    if args.json:
        print(json.dumps(json_safe(dict(comparison.to_json(), calibration=[r.to_dict() for r in calibration],
                                        contamination=split.to_dict() if split else None,
                                        report={"html": str(paths.html), "markdown": str(paths.markdown)})), indent=2))
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
    for r in split.rows if split else []:
        s = r.stats
        print(f"  contamination {r.run_id} {r.scope.name}: clean {s.mean_x:.3f} (n={s.n_x}) vs contaminated "
              f"{s.mean_y:.3f} (n={s.n_y})  Δ={s.delta:+.3f}  p={s.p_value:.3g}  p_{comparison.correction}={r.p_adjusted:.3g}")
    print(f"report: {paths.html}\n        {paths.markdown}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    return compare_and_report(args.runs, args, args.seed)


def add_report_flags(p: argparse.ArgumentParser) -> None:
    """The comparison's options (shared with `workbench sweep`)."""
    p.add_argument("--out", type=path, default="reports", help="report directory (default: reports/)")
    p.add_argument("--correction", default="holm", choices=list(CORRECTIONS),
                   help="multiple-comparison correction across tasks and subjects (default holm)")
    p.add_argument("--alpha", type=float_in(0, 1, low_open=True, high_open=True), default=0.05,
                   help="significance level marked in the report (default 0.05)")
    p.add_argument("--allow-config-diff", action="store_true",
                   help="compare runs scored under different settings (judge, sandbox limits); the report shows them")


@command("compare", order=30)
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare", parents=[STORE, JSON], help="paired comparison of runs on the same items, with an HTML/Markdown report",
        description="Compare runs item by item (matched by task, doc_id and prompt hash); every run after the first "
                    "is compared with the first. Writes a self-contained HTML report (opens offline) and Markdown: "
                    "leaderboard with CIs, paired deltas with McNemar/permutation p-values corrected across tasks, "
                    "a forest plot, calibration (ECE, Brier, reliability diagrams), accuracy on clean vs contaminated "
                    "items (--contamination), flipped items and a manifest diff.",
        epilog="Example: workbench compare RUN_A RUN_B --out reports/ --json")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids; the first is the baseline")
    add_report_flags(p)
    p.add_argument("--contamination", type=path, metavar="ID",
                   help="a contamination result (`workbench contamination`): accuracy on clean vs contaminated items")
    p.add_argument("--seed", type=rng_seed, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_compare)
