"""`workbench runs list|show|verify`: read the run store."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.commands import command
from workbench.commands._common import JSON, STORE, json_safe, verify_entries


def cmd_list(args: argparse.Namespace) -> int:
    from workbench.store import RunStore

    store = RunStore(args.store)
    runs, bad = store.scan()
    partial = list(store.partial())
    for path, why in bad:
        print(f"workbench: warning: skipped {path}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "runs": [{"run_id": r.run_id, "created": r.manifest.get("created"), "model": r.manifest["model"].get("spec"),
                      "backend": r.manifest["model"].get("backend"), "suite": r.manifest.get("suite"),
                      "tasks": list(r.manifest["tasks"]), "n_samples": r.manifest.get("n_samples"),
                      "status": "complete"} for r in runs],
            "incomplete": [{"run_id": p.run_id, "created": p.manifest.get("created"), "status": "incomplete"}
                           for p in partial],
            "unreadable": [{"path": str(p), "reason": why} for p, why in bad],
        }, indent=2))
        return 0
    if not runs and not partial:
        print(f"no runs in {store.root}")
        return 0
    print(f"{'run_id':<48} {'model':<22} {'backend':<9} {'tasks':>5} {'samples':>7}  created")
    for r in runs:
        m = r.manifest
        print(f"{r.run_id:<48} {str(m['model'].get('spec'))[:22]:<22} {str(m['model'].get('backend')):<9} "
              f"{len(m['tasks']):>5} {m.get('n_samples', 0):>7}  {m.get('created', '')}")
    for p in partial:
        print(f"{p.run_id:<48} INCOMPLETE - resume with `workbench eval --resume {p.run_id}`")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.commands.eval import results_table
    from workbench.store import RunStore

    run = RunStore(args.store).load(args.run_id)
    if args.json:
        print(json.dumps(json_safe({"run_id": run.run_id, "manifest": run.manifest, "metrics": run.metrics}),
                         indent=2, default=str))
        return 0
    m = run.manifest
    model = m["model"]
    print(f"run_id:   {run.run_id}\nmodel:    {model.get('spec')} ({model.get('backend')}, {model.get('quantization')})")
    print(f"sha256:   {model.get('sha256')}\ncreated:  {m.get('created')}  finished: {m.get('finished')}")
    print(f"suite:    {m.get('suite') or '-'}  limit: {m.get('limit')}  seed: {m.get('seed')}  samples: {m.get('n_samples')}")
    if m.get("scoring"):
        print("scoring:  " + ", ".join(f"{k}={v}" for k, v in m["scoring"].items() if v is not None))
    print()
    print(results_table(run.metrics))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every named run (default: all) against the digests its manifest recorded."""
    from workbench.store import RunStore

    store = RunStore(args.store)

    def scan() -> tuple[list[str], list]:
        runs, bad = store.scan()
        return [r.run_id for r in runs], bad

    return verify_entries(args.run_ids, scan, lambda rid: store.load(rid).verify(), "run")


@command("runs", order=20)
def register(subparsers: Any) -> None:
    r = subparsers.add_parser("runs", help="list, inspect and verify stored runs", description="Read the run store.")
    sub = r.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", parents=[STORE, JSON], help="list complete (and incomplete) runs",
                        description="List runs in the store, oldest first. Entries that cannot be read are named on "
                                    "stderr and skipped.")
    ls.set_defaults(func=cmd_list)
    sh = sub.add_parser("show", parents=[STORE, JSON], help="show one run's manifest summary and metrics",
                        description="Show one run.")
    sh.add_argument("run_id")
    sh.set_defaults(func=cmd_show)
    v = sub.add_parser("verify", parents=[STORE], help="check runs' files against their recorded sha256",
                       description="Check that each run's samples.parquet and metrics.json are the files the run "
                                   "wrote (sha256 recorded in its manifest). Exit 0 all good, 1 a problem found.")
    v.add_argument("run_ids", nargs="*", metavar="RUN", help="runs to check (default: every run in the store)")
    v.set_defaults(func=cmd_verify)
