"""`workbench eval`: evaluate a model on tasks or a suite into the run store (or resume a run)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from workbench.commands import command
from workbench.commands._common import (
    CLUSTER,
    DATA,
    JSON,
    REQUEST,
    STORE,
    cluster_from_args,
    json_safe,
    request_from_args,
)
from workbench.errors import WorkbenchError
from workbench.store.samples import fmt


def results_table(metrics: dict[str, Any]) -> str:
    """A plain-text table: task, metric, value, stderr, 95% CI, n."""
    lines = [f"{'task':<44} {'metric':<18} {'value':>7} {'stderr':>7}  {'95% CI':<17} {'n':>5}"]
    lines.append("-" * len(lines[0]))
    for section in ("tasks", "groups"):
        for task, ms in metrics.get(section, {}).items():
            label = task if section == "tasks" else f"[{task}]"
            for m, e in ms.items():
                ci = f"[{fmt(e['ci95_low'], '.4f', 'n/a')}, {fmt(e['ci95_high'], '.4f', 'n/a')}]"
                lines.append(f"{label:<44} {m:<18} {fmt(e['value'], '.4f', 'n/a'):>7} "
                             f"{fmt(e['stderr'], '.4f', 'n/a'):>7}  {ci:<17} {e['n']:>5}")
    return "\n".join(lines)


def headline_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """For suites with many subtasks (MMLU's 57): the groups and the tasks outside any group."""
    groups = metrics.get("groups") or {}
    if not groups:
        return metrics
    return {"tasks": {t: m for t, m in metrics["tasks"].items() if not any(t.startswith(g + "_") for g in groups)},
            "groups": groups}


def cmd_eval(args: argparse.Namespace) -> int:
    from workbench.eval.harness import run_eval
    from workbench.store import RunStore

    store = RunStore(args.store)
    cluster = cluster_from_args(args)
    started: list[str] = []

    def on_start(rid: str) -> None:
        started.append(rid)
        note = f"resuming run {rid}" if args.resume is not None else f"run {rid} started (store: {store.root})"
        print(note, file=sys.stderr, flush=True)

    scoring_flags = (args.refusal_judge, args.judge_model, args.sandbox_timeout, args.sandbox_memory)
    try:
        if args.resume is not None:
            if args.model or args.tasks or args.suite or any(v is not None for v in scoring_flags):
                raise WorkbenchError("--resume repeats the interrupted run's own settings; drop --model/--tasks/--suite "
                                     "and the scoring options")
            run = run_eval(store=store, resume=args.resume, progress=not args.no_progress, cluster=cluster,
                           on_start=on_start)
        else:
            if not args.model:
                raise WorkbenchError("--model is required (e.g. --model smollm2-135m); see `workbench models list`")
            run = run_eval(request_from_args(args, args.model), store=store, run_id=args.run_id,
                           progress=not args.no_progress, cluster=cluster, on_start=on_start)
    except KeyboardInterrupt:
        if not started:
            raise
        raise KeyboardInterrupt(f"run {started[0]} is kept and can be continued with "
                                f"`workbench eval --resume {started[0]}`") from None
    if args.json:
        print(json.dumps(json_safe({"run_id": run.run_id, "metrics": run.metrics}), indent=2))
    else:
        print(f"run_id: {run.run_id}")
        print(results_table(headline_metrics(run.metrics) if run.manifest.get("suite") else run.metrics))
        t = run.manifest.get("timings", {})
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\n{run.manifest['n_samples']} samples in {t.get('total_s', 0):.1f} s (eval wall time; this process "
              f"used {t.get('driver_cpu_s', 0):.1f} CPU s, load average {load:.1f} on {os.cpu_count()} CPUs); "
              f"stored in {run.path}")
    return 0


@command("eval", order=10)
def register(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", parents=[STORE, DATA, JSON, REQUEST, CLUSTER], help="evaluate a model on tasks or a suite",
                              description=(
        "Evaluate a model on lm-eval tasks read from the local benchmark mirror. Prints the run id and a "
        "results table (value, stderr, 95% bootstrap CI). Per-sample results are journalled as they are "
        "produced: an interrupted run continues with --resume RUN_ID."),
        epilog="Examples:\n  workbench eval --model smollm2-135m --suite quick\n"
               "  workbench eval --model gguf:model.gguf --tasks mmlu_anatomy,arc_easy --limit 20\n"
               "  workbench eval --resume RUN_ID\n"
               "  workbench eval --model smollm2-135m --suite quick --workers 2       # on a local Ray instance\n"
               "  workbench eval --resume RUN_ID --workers 8 --ray-address ray://head:10001", formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--model", help="model spec: an alias (smollm2-135m, gemma3-270m), hf:DIR, gguf:FILE, "
                                   "llamacpp:FILE, int8:FILE or openai:BASE_URL (see `workbench models list`)")
    e.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run with its recorded settings "
                                                       "(--workers and the other scale-out flags may differ)")
    e.add_argument("--run-id", help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_eval)
