"""One interpretability tool over many stored eval samples, in this process or fanned out over Ray workers.

Each worker (`workbench.eval.distributed.WorkerPool`) loads the hooked model once and runs the tool on
the samples it is handed; the results come back to the driver, which alone saves the artifacts.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from workbench.interp.sources import SampleSource


def _apply(model: Any, item: tuple[str, SampleSource, argparse.Namespace | None]) -> Any:
    from workbench.interp.tools import TOOLS

    name, sample, args = item
    return TOOLS.get(name).on_sample(model, sample, args=args)


def run_on_samples(tool: Any, model_spec: str, samples: list[SampleSource], on_result: Callable[[SampleSource, Any], None],
                   cluster: Any = None, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """`tool.on_sample` for every sample (with the command line's `args`, if given); `on_result(sample, result)`
    in this process as each finishes. Returns how it ran (mode, workers, retries)."""
    from workbench.interp.hooks import load_hooked

    if cluster is None:
        model = load_hooked(model_spec)
        for sample in samples:
            on_result(sample, _apply(model, (tool.name, sample, args)))
        return {"mode": "local", "workers": 1}
    from workbench.eval.distributed import WorkerPool

    pool = WorkerPool(cluster, load_hooked, (model_spec,))
    try:
        pool.start()
        pool.map(_apply, [(tool.name, s, args) for s in samples], lambda item, result: on_result(item[1], result))
        return {"mode": "ray", **cluster.describe(), **pool.stats()}
    finally:
        pool.close()
