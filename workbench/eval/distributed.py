"""Scale-out on Ray (extra `[distributed]`): a pool of Ray actors, each holding one loaded model.

The pool knows nothing about evaluation: each actor builds its state once with `setup(*args)` (the
harness passes its `ChunkEvaluator`, the interp fan-out a hooked model), then applies `fn(state, item)`
to the items the driver hands it, one at a time, so a fast worker takes more. Results come back to
the driver in completion order; the driver alone writes the run store or the artifacts.

Faults: an actor whose process dies (killed, out of memory, node lost) is restarted once by Ray and
reloads its model; the item it held goes back to the queue for any worker, up to `max_attempts`
tries. An exception raised by `setup` or `fn` is not retried (it would fail again): a
`WorkbenchError` reaches the caller as itself (one `workbench: error:` line), anything else as a
`WorkbenchError` naming it.

Without an address the driver starts a private local Ray instance (`address="local"`: it never
joins another cluster on the same machine by accident); with one it joins that cluster.
"""
from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from workbench import settings
from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'workbench[distributed]'"


@dataclass(frozen=True)
class Cluster:
    """Where and with what the workers run (none of it changes a score)."""

    workers: int
    address: str | None = None      # a Ray cluster (`ray://host:10001`, `host:6379`, `auto`); None: a local one
    cpus: float = 1.0               # per worker; also its torch threads
    gpus: float = 0.0               # per worker
    memory_mb: int | None = None    # per worker, as a Ray scheduling resource
    max_attempts: int = 3           # tries per item when the worker holding it dies
    start_timeout_s: float = 900.0  # for every worker to load its model

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise WorkbenchError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus <= 0 or self.gpus < 0 or (self.memory_mb is not None and self.memory_mb < 1):
            raise WorkbenchError("worker resources must be positive (--worker-cpus > 0, --worker-gpus >= 0, "
                                 "--worker-memory >= 1 MB)")

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def describe(self) -> dict[str, Any]:
        return {"workers": self.workers, "address": self.address or "local", "cpus_per_worker": self.cpus,
                "gpus_per_worker": self.gpus, "memory_mb_per_worker": self.memory_mb,
                "threads_per_worker": self.threads}


def _ray():
    try:
        import ray
    except ImportError:
        raise WorkbenchError(f"--workers runs on Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(cluster: Cluster) -> bool:
    """Join the cluster (or start a local one) unless this process already is; True if it connected now."""
    ray = _ray()
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notes would break the progress bar
    env = settings.worker_environment()
    common = dict(runtime_env={"env_vars": env}, logging_level=logging.WARNING, log_to_driver=False,
                  configure_logging=False)
    try:
        if cluster.address:
            ray.init(address=cluster.address, **common)
        else:
            ray.init(address="local", num_cpus=max(1, int(cluster.workers * cluster.cpus + 0.999)),
                     num_gpus=int(cluster.workers * cluster.gpus + 0.999), include_dashboard=False,
                     object_store_memory=settings.ray_object_store_bytes(), **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {cluster.address}" if cluster.address else "a local Ray instance"
        raise WorkbenchError(f"cannot connect to {where}: {str(exc).splitlines()[0]}") from None
    return True


class Connection:
    """Keeps this process joined to the cluster (or its local Ray instance up) across several pools."""

    def __init__(self, cluster: Cluster) -> None:
        self.owned = connect(cluster)

    def close(self) -> None:
        if self.owned:
            _ray().shutdown()


class _Worker:
    """The Ray actor: builds its state once (again after a restart), then applies functions to items."""

    def __init__(self, setup: Callable[..., Any], args: tuple, threads: int) -> None:
        self._setup, self._args, self._threads, self._state = setup, args, threads, None

    def ready(self) -> dict[str, Any]:
        """Build the state if needed (load the model); its `describe()` if it has one."""
        if self._state is None:
            try:
                import torch

                torch.set_num_threads(self._threads)
            except ImportError:  # pragma: no cover
                pass
            self._state = self._setup(*self._args)
        describe = getattr(self._state, "describe", None)
        return describe() if callable(describe) else {}

    def call(self, fn: Callable[[Any, Any], Any], item: Any) -> tuple[Any, float, str]:
        """(fn(state, item), seconds it took, the Ray node it ran on)."""
        import ray

        self.ready()
        t = time.perf_counter()
        out = fn(self._state, item)
        return out, time.perf_counter() - t, ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        close = getattr(self._state, "close", None)
        if callable(close):
            close()


def _unwrap(exc: BaseException) -> WorkbenchError:
    """The error a worker raised, as the driver reports it."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, WorkbenchError):
        return cause
    if cause is not None:
        return WorkbenchError(f"a Ray worker failed: {type(cause).__name__}: {cause}")
    return WorkbenchError(f"a Ray worker failed: {str(exc).strip().splitlines()[-1]}")


class WorkerPool:
    """`cluster.workers` Ray actors, each holding `setup(*args)`; `map` spreads items over them."""

    def __init__(self, cluster: Cluster, setup: Callable[..., Any], args: tuple) -> None:
        self.cluster = cluster
        self.ray = _ray()
        self.owns_connection = connect(cluster)
        self.retried = 0
        self.nodes: set[str] = set()
        self.overheads: list[float] = []  # per item: driver-side round trip minus the worker's compute
        options: dict[str, Any] = dict(num_cpus=cluster.cpus, num_gpus=cluster.gpus, max_restarts=1,
                                       max_task_retries=0,
                                       runtime_env={"env_vars": settings.worker_environment(
                                           cluster.threads, gpu=cluster.gpus > 0)})
        if cluster.memory_mb:
            options["memory"] = cluster.memory_mb * 2**20
        actor = self.ray.remote(_Worker).options(**options)
        self.actors = [actor.remote(setup, args, cluster.threads) for _ in range(cluster.workers)]

    def start(self) -> list[dict[str, Any]]:
        """Wait for every worker to build its state; one clear error if any cannot."""
        ray = self.ray
        refs = [a.ready.remote() for a in self.actors]
        try:
            return ray.get(refs, timeout=self.cluster.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            c = self.cluster
            raise WorkbenchError(
                f"only {len(ready)} of {c.workers} Ray workers started within {c.start_timeout_s:.0f} s; each needs "
                f"{c.cpus} CPU, {c.gpus} GPU{f', {c.memory_mb} MB' if c.memory_mb else ''} - does the cluster have "
                f"room for them? (`ray status`)") from None
        except ray.exceptions.RayTaskError as exc:
            raise _loading_error(_unwrap(exc)) from None
        except ray.exceptions.RayActorError as exc:
            raise WorkbenchError(f"a Ray worker died while loading the model: {_first_line(exc)}") from None

    def map(self, fn: Callable[[Any, Any], Any], items: Iterable[Any],
            on_result: Callable[[Any, Any], None]) -> None:
        """Apply `fn` to every item on the workers; `on_result(item, result)` in the driver as each finishes."""
        ray = self.ray
        queue = deque(enumerate(items))
        attempts: dict[int, int] = {}
        idle = deque(range(len(self.actors)))
        inflight: dict[Any, tuple[int, int, Any, float]] = {}
        probes: dict[Any, int] = {}  # actors being restarted by Ray: ready() answers once they are back
        while queue or inflight:
            while queue and idle:
                a = idle.popleft()
                k, item = queue.popleft()
                inflight[self.actors[a].call.remote(fn, item)] = (a, k, item, time.perf_counter())
            if not inflight and not probes:
                raise WorkbenchError("every Ray worker has died; the finished part is kept - resume the run")
            (ref,), _ = ray.wait(list(inflight) + list(probes), num_returns=1)
            if ref in probes:
                a = probes.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(a)
                except ray.exceptions.RayActorError:
                    log.warning("Ray worker %d is gone for good", a)
                except ray.exceptions.RayTaskError as exc:
                    raise _loading_error(_unwrap(exc)) from None
                continue
            a, k, item, t_sent = inflight.pop(ref)
            try:
                result, seconds, node = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise _unwrap(exc) from None
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError, ray.exceptions.NodeDiedError) as exc:
                attempts[k] = attempts.get(k, 0) + 1
                if attempts[k] >= self.cluster.max_attempts:
                    raise WorkbenchError(f"item {k} failed on {attempts[k]} Ray workers in a row (last: "
                                         f"{_first_line(exc)}); the finished part is kept - resume the run") from None
                log.warning("Ray worker %d died holding item %d (%s); retrying it", a, k, type(exc).__name__)
                self.retried += 1
                queue.appendleft((k, item))
                probes[self.actors[a].ready.remote()] = a
                continue
            self.overheads.append(max(0.0, time.perf_counter() - t_sent - seconds))
            self.nodes.add(node)
            idle.append(a)
            on_result(item, result)

    def stats(self) -> dict[str, Any]:
        over = self.overheads
        return {"retried": self.retried, "items": len(over), "nodes": len(self.nodes),
                "driver_overhead_s_mean": round(statistics.fmean(over), 4) if over else None,
                "driver_overhead_s_median": round(statistics.median(over), 4) if over else None}

    def close(self) -> None:
        ray = self.ray
        for a in self.actors:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(a)
        if self.owns_connection:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _loading_error(err: WorkbenchError) -> WorkbenchError:
    """The worker's own error (e.g. ModelError), prefixed with where it happened."""
    out = type(err)(f"a Ray worker could not load the model: {err}")
    out.exit_code = err.exit_code
    return out


class RayExecutor:
    """The harness's executor for `--workers N`: the run's units of work on a WorkerPool of chunk evaluators."""

    def __init__(self, cluster: Cluster, evaluate: Callable[[Any, Any], Any], evaluator: Callable[..., Any]) -> None:
        self.cluster, self.evaluate, self.evaluator = cluster, evaluate, evaluator
        self.pool: WorkerPool | None = None

    def start(self, *args: Any) -> list[dict[str, Any]]:
        self.pool = WorkerPool(self.cluster, self.evaluator, args)
        described = self.pool.start()
        if len({d["model"]["sha256"] for d in described}) > 1:
            raise WorkbenchError("the Ray workers loaded different weights for the same model spec "
                                 "(is the model file the same on every node?)")
        return described

    def run(self, units: list[Any], on_result: Callable[[Any], None]) -> None:
        """Evaluate the harness's units of work on the workers; `on_result` gets each chunk's result."""
        def done(_unit: Any, results: list[Any]) -> None:
            for result in results:
                on_result(result)

        self.pool.map(self.evaluate, units, done)

    def session(self) -> dict[str, Any]:
        return {"mode": "ray", **self.cluster.describe(), **(self.pool.stats() if self.pool else {})}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
