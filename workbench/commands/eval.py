"""`workbench eval`: evaluate a model on tasks or a suite into the run store (or resume a run)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.argtypes import csv, float_in, int_at_least
from workbench.commands import command
from workbench.commands._common import CLUSTER, DATA, JSON, STORE, cluster_from_args, json_safe
from workbench.errors import WorkbenchError
from workbench.store.samples import fmt


def results_table(metrics: dict[str, Any]) -> str:
    """A plain-text table: task, metric, value, stderr, 95% CI, n."""
    lines = [f"{'task':<44} {'metric':<16} {'value':>7} {'stderr':>7}  {'95% CI':<17} {'n':>5}"]
    lines.append("-" * len(lines[0]))
    for section in ("tasks", "groups"):
        for task, ms in metrics.get(section, {}).items():
            label = task if section == "tasks" else f"[{task}]"
            for m, e in ms.items():
                ci = f"[{fmt(e['ci95_low'], '.4f', 'n/a')}, {fmt(e['ci95_high'], '.4f', 'n/a')}]"
                lines.append(f"{label:<44} {m:<16} {fmt(e['value'], '.4f', 'n/a'):>7} "
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
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    store = RunStore(args.store)
    cluster = cluster_from_args(args)
    scoring_flags = (args.refusal_judge, args.judge_model, args.sandbox_timeout, args.sandbox_memory)
    if args.resume:
        if args.model or args.tasks or args.suite or any(v is not None for v in scoring_flags):
            raise WorkbenchError("--resume repeats the interrupted run's own settings; drop --model/--tasks/--suite "
                                 "and the scoring options")
        run = run_eval(store=store, resume=args.resume, progress=not args.no_progress, cluster=cluster,
                       on_start=lambda rid: print(f"resuming run {rid}", file=sys.stderr, flush=True))
    else:
        if not args.model:
            raise WorkbenchError("--model is required (e.g. --model smollm2-135m); see `workbench models list`")
        req = EvalRequest(
            model=args.model, tasks=csv(args.tasks) if args.tasks else [], suite=args.suite, limit=args.limit,
            num_fewshot=args.num_fewshot, data_dir=args.data_dir, seed=args.seed, batch_size=args.batch_size,
            dtype=args.dtype, chunk_size=args.chunk_size, refusal_judge=args.refusal_judge,
            judge_model=args.judge_model, sandbox_timeout_s=args.sandbox_timeout, sandbox_memory_mb=args.sandbox_memory,
        )
        run = run_eval(req, store=store, run_id=args.run_id, progress=not args.no_progress, cluster=cluster,
                       on_start=lambda rid: print(f"run {rid} started (store: {store.root})", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(json_safe({"run_id": run.run_id, "metrics": run.metrics}), indent=2))
    else:
        print(f"run_id: {run.run_id}")
        print(results_table(headline_metrics(run.metrics) if run.manifest.get("suite") else run.metrics))
        t = run.manifest.get("timings", {})
        print(f"\n{run.manifest['n_samples']} samples in {t.get('total_s', 0):.1f} s; stored in {run.path}")
    return 0


@command("eval", order=10)
def register(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", parents=[STORE, DATA, JSON, CLUSTER], help="evaluate a model on tasks or a suite",
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
    sel = e.add_mutually_exclusive_group()
    sel.add_argument("--tasks", help="comma-separated task or group names (e.g. mmlu,arc_easy; `workbench tasks list`)")
    sel.add_argument("--suite", help="a named suite from benchmarks/suites.yaml (quick, full, safety)")
    e.add_argument("--limit", type=int_at_least(1), help="evaluate the first N docs of each task (as lm-eval's --limit)")
    e.add_argument("--num-fewshot", type=int_at_least(0), help="override few-shot count (tasks that pin 0 keep 0)")
    e.add_argument("--seed", type=int, default=1234, help="seed for subsets, few-shot draws and bootstrap (default 1234)")
    e.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run with its recorded settings")
    e.add_argument("--run-id", help=argparse.SUPPRESS)
    e.add_argument("--batch-size", type=int_at_least(1), default=8, help="contexts per forward pass (default 8)")
    e.add_argument("--chunk-size", type=int_at_least(1), default=16, help="docs per journalled chunk (default 16)")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="torch dtype for hf/gguf backends")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = e.add_argument_group("scoring settings (recorded in the manifest; compare/gate refuse runs that differ)")
    s.add_argument("--refusal-judge", help="refusal judge for the safety tasks: keyword (default) or model "
                                           "(default from $WORKBENCH_REFUSAL_JUDGE)")
    s.add_argument("--judge-model", help="model spec the `model` judge asks (default smollm2-135m; $WORKBENCH_JUDGE_MODEL)")
    s.add_argument("--sandbox-timeout", type=float_in(0, 3600, low_open=True), metavar="SECONDS",
                   help="wall-clock limit per HumanEval program (default 10; $WORKBENCH_SANDBOX_TIMEOUT)")
    s.add_argument("--sandbox-memory", type=int_at_least(64), metavar="MB",
                   help="address-space limit per HumanEval program (default 1024; $WORKBENCH_SANDBOX_MEMORY_MB)")
    e.set_defaults(func=cmd_eval)
