"""What the commands share: parent parsers for the common flags and output helpers."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from workbench import settings
from workbench.argtypes import float_in, int_at_least
from workbench.errors import WorkbenchError


def _parent(add: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add(p)
    return p


STORE = _parent(lambda p: p.add_argument("--store", help=settings.STORE_HELP))
ARTIFACTS = _parent(lambda p: p.add_argument("--artifacts", help=settings.ARTIFACTS_HELP))
DATA = _parent(lambda p: p.add_argument("--data-dir", help=settings.DATA_HELP))
JSON = _parent(lambda p: p.add_argument("--json", action="store_true", help="machine-readable output (JSON)"))


def _cluster_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on Ray (extra `[distributed]`; none of these changes a score)")
    g.add_argument("--workers", type=int_at_least(1), metavar="N",
                   help="run on N Ray workers, each holding one loaded model (default: this process alone)")
    g.add_argument("--ray-address", metavar="ADDRESS",
                   help="join this Ray cluster (e.g. ray://head:10001, head:6379, auto); default with --workers: "
                        "start a local Ray instance")
    g.add_argument("--worker-cpus", type=float_in(0, 1024, low_open=True), default=1.0, metavar="N",
                   help="CPUs per worker, also its torch threads (default 1)")
    g.add_argument("--worker-gpus", type=float_in(0, 64), default=0.0, metavar="N", help="GPUs per worker (default 0)")
    g.add_argument("--worker-memory", type=int_at_least(1), metavar="MB", help="memory per worker, reserved in Ray")


CLUSTER = _parent(_cluster_flags)


def cluster_from_args(args: argparse.Namespace):
    """The `workbench.eval.distributed.Cluster` the flags ask for, or None to run in this process."""
    if args.workers is None:
        if args.ray_address:
            raise WorkbenchError("--ray-address needs --workers N")
        return None
    from workbench.eval.distributed import Cluster

    return Cluster(workers=args.workers, address=args.ray_address, cpus=args.worker_cpus, gpus=args.worker_gpus,
                   memory_mb=args.worker_memory)


def json_safe(obj: Any) -> Any:
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
