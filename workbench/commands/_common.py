"""What the commands share: parent parsers for the common flags and output helpers."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from workbench import settings
from workbench.argtypes import csv, float_in, int_at_least, path, rng_seed, torch_device
from workbench.errors import WorkbenchError


def _parent(add: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add(p)
    return p


STORE = _parent(lambda p: p.add_argument("--store", type=path, help=settings.STORE_HELP))
ARTIFACTS = _parent(lambda p: p.add_argument("--artifacts", type=path, help=settings.ARTIFACTS_HELP))
DATA = _parent(lambda p: p.add_argument("--data-dir", type=path, help=settings.DATA_HELP))
JSON = _parent(lambda p: p.add_argument("--json", action="store_true", help="machine-readable output (JSON)"))


def _request_flags(p: argparse.ArgumentParser) -> None:
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--tasks", help="comma-separated task or group names (e.g. mmlu,arc_easy; `workbench tasks list`)")
    sel.add_argument("--suite", help="a named suite from benchmarks/suites.yaml (quick, full, safety)")
    p.add_argument("--limit", type=int_at_least(1), help="evaluate the first N docs of each task (as lm-eval's --limit)")
    p.add_argument("--num-fewshot", type=int_at_least(0), help="override few-shot count (tasks that pin 0 keep 0)")
    p.add_argument("--seed", type=rng_seed, default=1234,
                   help="seed for subsets, few-shot draws, sampling and bootstrap (default 1234)")
    p.add_argument("--batch-size", type=int_at_least(1), default=settings.BATCH_SIZE,
                   help=f"contexts per forward pass, sequences generated at once (default {settings.BATCH_SIZE})")
    p.add_argument("--chunk-size", type=int_at_least(1), default=16, help="docs per journalled chunk (default 16)")
    p.add_argument("--pool-docs", type=int_at_least(1), default=64,
                   help="docs handed to the model in one call, chunks of several tasks pooled: one continuous "
                        "batch, full packed rows (default 64; a killed run loses at most one such unit)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="torch dtype for hf/gguf backends")
    p.add_argument("--device", type=torch_device, help="torch device for hf/gguf backends: cpu, cuda, cuda:N, mps or "
                                                      "auto (default $WORKBENCH_DEVICE, else cpu); recorded in the manifest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = p.add_argument_group("scoring settings (recorded in the manifest; compare/gate refuse runs that differ)")
    s.add_argument("--refusal-judge", help="refusal judge for the safety tasks: keyword (default) or model "
                                           "(default from $WORKBENCH_REFUSAL_JUDGE)")
    s.add_argument("--judge-model", help="model spec the `model` judge asks (default smollm2-135m; $WORKBENCH_JUDGE_MODEL)")
    s.add_argument("--sandbox-timeout", type=float_in(0, 3600, low_open=True), metavar="SECONDS",
                   help="wall-clock limit per HumanEval program (default 10; $WORKBENCH_SANDBOX_TIMEOUT)")
    s.add_argument("--sandbox-memory", type=int_at_least(64), metavar="MB",
                   help="address-space limit per HumanEval program (default 1024; $WORKBENCH_SANDBOX_MEMORY_MB)")


REQUEST = _parent(_request_flags)


def request_from_args(args: argparse.Namespace, model: str):
    """The `EvalRequest` that the request flags describe, for `model`."""
    from workbench.eval.harness import EvalRequest

    return EvalRequest(
        model=model, tasks=csv(args.tasks) if args.tasks else [], suite=args.suite, limit=args.limit,
        num_fewshot=args.num_fewshot, data_dir=args.data_dir, seed=args.seed, batch_size=args.batch_size,
        dtype=args.dtype, device=args.device, chunk_size=args.chunk_size, pool_docs=args.pool_docs, refusal_judge=args.refusal_judge, judge_model=args.judge_model,
        sandbox_timeout_s=args.sandbox_timeout, sandbox_memory_mb=args.sandbox_memory)


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


def verify_entries(ids: list[str], scan: Callable[[], tuple[list[str], list[tuple[Any, str]]]],
                   verify: Callable[[str], list[str]], what: str) -> int:
    """Print one FAIL line per problem and a count; exit status 1 if any. `ids` empty: every entry `scan` finds."""
    from workbench.errors import WorkbenchError

    problems: list[str] = []
    if not ids:
        ids, bad = scan()
        problems += [f"{path}: {why}" for path, why in bad]
    else:
        bad = []
    for entry in ids:
        try:
            problems += verify(entry)
        except WorkbenchError as exc:
            problems.append(str(exc))
    for line in problems:
        print(f"FAIL {line}")
    print(f"{len(ids) + len(bad)} {what}(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0
