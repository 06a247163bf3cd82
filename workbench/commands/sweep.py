"""`workbench sweep`: one run per model on the same tasks (on Ray workers with --workers), then their comparison."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.argtypes import csv
from workbench.commands import command
from workbench.commands._common import CLUSTER, DATA, JSON, REQUEST, STORE, cluster_from_args, request_from_args
from workbench.commands.compare import add_report_flags, compare_and_report
from workbench.errors import WorkbenchError


def cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.eval.harness import run_eval
    from workbench.eval.models import parse_spec
    from workbench.store import RunStore

    models = csv(args.models)
    if len(models) < 2 or len(set(models)) != len(models):
        raise WorkbenchError("--models needs at least two different model specs, comma-separated")
    for spec in models:  # every spec checked before the first run starts
        parse_spec(spec)
    store = RunStore(args.store)
    cluster = cluster_from_args(args)
    connection = None
    if cluster is not None:  # one Ray connection (or local instance) for every run of the sweep
        from workbench.eval.distributed import Connection

        connection = Connection(cluster)
    run_ids = []
    try:
        for spec in models:
            run = run_eval(request_from_args(args, spec), store=store, progress=not args.no_progress,
                           cluster=cluster,
                           on_start=lambda rid, spec=spec: print(f"run {rid} ({spec}) started", file=sys.stderr,
                                                                 flush=True))
            run_ids.append(run.run_id)
            print(f"{spec}: run {run.run_id} ({run.manifest['n_samples']} samples, "
                  f"{run.manifest['timings']['total_s']:.1f} s)", file=sys.stderr, flush=True)
    finally:
        if connection is not None:
            connection.close()
    return compare_and_report(run_ids, args, seed=0)


@command("sweep", order=15)
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", parents=[STORE, DATA, JSON, REQUEST, CLUSTER],
        help="evaluate several models on the same tasks, then compare them",
        description="Run the same evaluation for each model (one run per model, one after another; each spread over "
                    "--workers N Ray workers when given, all on the same cluster), then compare the runs as "
                    "`workbench compare` does: the first model is the baseline.",
        epilog="Example: workbench sweep --models smollm2-135m,gemma3-270m --suite quick --workers 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", required=True, help="comma-separated model specs; the first is the baseline")
    add_report_flags(p)
    p.set_defaults(func=cmd_sweep)
