"""`workbench` command line. Errors in the user's input print one line and exit non-zero."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

from workbench import _env

_env.apply()

from workbench.errors import WorkbenchError  # noqa: E402

# Further subcommands live in their own modules, each with `register(subparsers)`; adding a command
# is one module plus one line here.
COMMAND_MODULES: list[str] = [
    "workbench.commands.compare",
    "workbench.commands.gate",
    "workbench.commands.interp",
    "workbench.commands.artifacts",
    "workbench.commands.dashboard",
]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _fmt(v: float) -> str:
    return "  n/a " if v != v else f"{v:.4f}"


def results_table(metrics: dict[str, Any]) -> str:
    """A plain-text table: task, metric, value, stderr, 95% CI, n."""
    lines = [f"{'task':<44} {'metric':<16} {'value':>7} {'stderr':>7}  {'95% CI':<17} {'n':>5}"]
    lines.append("-" * len(lines[0]))
    for section in ("tasks", "groups"):
        for task, ms in metrics.get(section, {}).items():
            label = task if section == "tasks" else f"[{task}]"
            for m, e in ms.items():
                ci = f"[{_fmt(e['ci95_low'])}, {_fmt(e['ci95_high'])}]"
                lines.append(f"{label:<44} {m:<16} {_fmt(e['value']):>7} {_fmt(e['stderr']):>7}  {ci:<17} {e['n']:>5}")
    return "\n".join(lines)


def _compact_metrics(metrics: dict[str, Any], suite: bool) -> dict[str, Any]:
    """For suites with many subtasks (MMLU's 57), show groups and ungrouped tasks only."""
    if not suite or not metrics.get("groups"):
        return metrics
    return {"tasks": {t: m for t, m in metrics["tasks"].items() if not _in_group(t, metrics)}, "groups": metrics["groups"]}


def _in_group(task: str, metrics: dict[str, Any]) -> bool:
    return any(task.startswith(g + "_") for g in metrics.get("groups", {}))


# ---- commands -------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from workbench.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    store = RunStore(args.store)
    if args.resume:
        if args.model or args.tasks or args.suite:
            raise WorkbenchError("--resume repeats the interrupted run's own settings; drop --model/--tasks/--suite")
        run = run_eval(store=store, resume=args.resume, progress=not args.no_progress,
                       on_start=lambda rid: print(f"resuming run {rid}", file=sys.stderr, flush=True))
    else:
        if not args.model:
            raise WorkbenchError("--model is required (e.g. --model smollm2-135m); see `workbench models list`")
        req = EvalRequest(
            model=args.model, tasks=_csv(args.tasks) if args.tasks else [], suite=args.suite, limit=args.limit,
            num_fewshot=args.num_fewshot, data_dir=args.data_dir, seed=args.seed, batch_size=args.batch_size,
            dtype=args.dtype, chunk_size=args.chunk_size,
        )
        run = run_eval(req, store=store, run_id=args.run_id, progress=not args.no_progress,
                       on_start=lambda rid: print(f"run {rid} started (store: {store.root})", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"run_id": run.run_id, "metrics": run.metrics}, indent=2))
    else:
        print(f"run_id: {run.run_id}")
        print(results_table(_compact_metrics(run.metrics, bool(run.manifest.get("suite")))))
        t = run.manifest.get("timings", {})
        print(f"\n{run.manifest['n_samples']} samples in {t.get('total_s', 0):.1f} s; stored in {run.path}")
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    from workbench.store import RunStore

    store = RunStore(args.store)
    runs = store.list()
    partial = list(store.partial())
    if args.json:
        print(json.dumps({
            "runs": [{"run_id": r.run_id, "created": r.manifest.get("created"), "model": r.manifest["model"]["spec"],
                      "backend": r.manifest["model"]["backend"], "suite": r.manifest.get("suite"),
                      "tasks": list(r.manifest["tasks"]), "n_samples": r.manifest.get("n_samples"),
                      "status": "complete"} for r in runs],
            "incomplete": [{"run_id": p.run_id, "created": p.manifest.get("created"), "status": "incomplete"} for p in partial],
        }, indent=2))
        return 0
    if not runs and not partial:
        print(f"no runs in {store.root}")
        return 0
    print(f"{'run_id':<48} {'model':<22} {'backend':<9} {'tasks':>5} {'samples':>7}  created")
    for r in runs:
        m = r.manifest
        print(f"{r.run_id:<48} {m['model']['spec'][:22]:<22} {m['model']['backend']:<9} {len(m['tasks']):>5} "
              f"{m.get('n_samples', 0):>7}  {m.get('created', '')}")
    for p in partial:
        print(f"{p.run_id:<48} INCOMPLETE - resume with `workbench eval --resume {p.run_id}`")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    from workbench.store import RunStore

    run = RunStore(args.store).load(args.run_id)
    if args.json:
        print(json.dumps({"run_id": run.run_id, "manifest": run.manifest, "metrics": run.metrics}, indent=2, default=str))
        return 0
    m = run.manifest
    print(f"run_id:   {run.run_id}\nmodel:    {m['model']['spec']} ({m['model']['backend']}, {m['model']['quantization']})")
    print(f"sha256:   {m['model']['sha256']}\ncreated:  {m.get('created')}  finished: {m.get('finished')}")
    print(f"suite:    {m.get('suite') or '-'}  limit: {m.get('limit')}  seed: {m.get('seed')}  samples: {m.get('n_samples')}\n")
    print(results_table(run.metrics))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from workbench.models import backends
    from workbench.models.embedded import ALIASES

    print("embedded aliases:")
    for name, alias in ALIASES.items():
        print(f"  {name:<16} {alias.description}")
    print("\nspec forms:")
    for prefix, help_ in backends().items():
        print(f"  {prefix + ':<...>':<16} {help_}")
    return 0


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from workbench import tasks as T

    specs, grp = T.registry(), T.groups()
    if args.json:
        print(json.dumps({"groups": grp, "tasks": {n: {"benchmark": s.benchmark, "subset": s.subset, "group": s.group}
                                                   for n, s in specs.items()}, "suites": T.suites()}, indent=2))
        return 0
    print("suites:")
    for name, s in T.suites().items():
        print(f"  {name:<14} {s.get('description', '')}")
    print("\ngroups:")
    for name, members in grp.items():
        print(f"  {name:<14} {len(members)} tasks ({members[0]}, ...)")
    print("\ntasks:")
    for name, s in specs.items():
        if not s.group:
            print(f"  {name:<24} {s.benchmark}")
    print(f"\n({len(specs)} tasks in all; `workbench tasks list --json` lists every one)")
    return 0


# ---- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench",
        description="Evaluate local and quantized language models on real benchmarks, offline, into one run store.",
        epilog="Examples:\n  workbench eval --model smollm2-135m --suite quick\n"
               "  workbench eval --model gguf:model.gguf --tasks mmlu_anatomy,arc_easy --limit 20\n"
               "  workbench runs list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    store_help = "run store directory (default: $WORKBENCH_STORE, else ./workbench-runs)"

    e = sub.add_parser("eval", help="evaluate a model on tasks or a suite", description=(
        "Evaluate a model on lm-eval tasks read from the local benchmark mirror. Prints the run id and a "
        "results table (value, stderr, 95%% bootstrap CI). Per-sample results are journalled as they are "
        "produced: an interrupted run continues with --resume RUN_ID."))
    e.add_argument("--model", help="model spec: an alias (smollm2-135m, gemma3-270m), hf:DIR, gguf:FILE, "
                                   "llamacpp:FILE or openai:BASE_URL (see `workbench models list`)")
    sel = e.add_mutually_exclusive_group()
    sel.add_argument("--tasks", help="comma-separated task or group names (e.g. mmlu,arc_easy)")
    sel.add_argument("--suite", help="a named suite from benchmarks/suites.yaml (quick, full)")
    e.add_argument("--limit", type=int, help="evaluate the first N docs of each task (as lm-eval's --limit)")
    e.add_argument("--num-fewshot", type=int, help="override few-shot count (tasks that pin 0 keep 0)")
    e.add_argument("--data-dir", help="benchmark mirror (default: $WORKBENCH_DATA_DIR, else ../shared/benchmark-data)")
    e.add_argument("--store", help=store_help)
    e.add_argument("--seed", type=int, default=1234, help="seed for subsets, few-shot draws and bootstrap (default 1234)")
    e.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run with its recorded settings")
    e.add_argument("--run-id", help=argparse.SUPPRESS)
    e.add_argument("--batch-size", type=int, default=8, help="contexts per forward pass (default 8)")
    e.add_argument("--chunk-size", type=int, default=16, help="docs per journalled chunk (default 16)")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="torch dtype for hf/gguf backends")
    e.add_argument("--json", action="store_true", help="print the run id and metrics as JSON")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("runs", help="list and inspect stored runs", description="Read the run store.")
    rsub = r.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    rl = rsub.add_parser("list", help="list complete (and incomplete) runs", description="List runs in the store.")
    rl.add_argument("--store", help=store_help)
    rl.add_argument("--json", action="store_true", help="machine-readable output")
    rl.set_defaults(func=cmd_runs_list)
    rs = rsub.add_parser("show", help="show one run's manifest summary and metrics", description="Show one run.")
    rs.add_argument("run_id")
    rs.add_argument("--store", help=store_help)
    rs.add_argument("--json", action="store_true", help="print manifest and metrics as JSON")
    rs.set_defaults(func=cmd_runs_show)

    m = sub.add_parser("models", help="list model backends and embedded models", description="Model registry.")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="list embedded aliases and spec forms", description="List models.")
    ml.set_defaults(func=cmd_models_list)

    t = sub.add_parser("tasks", help="list tasks, groups and suites", description="Task registry.")
    tsub = t.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    tl = tsub.add_parser("list", help="list suites, groups and tasks", description="List tasks.")
    tl.add_argument("--json", action="store_true", help="every task, as JSON")
    tl.set_defaults(func=cmd_tasks_list)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("workbench: interrupted; an interrupted eval can be continued with `workbench eval --resume RUN_ID`",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
