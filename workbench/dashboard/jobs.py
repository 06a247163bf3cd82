"""Interpretability artifacts created from the sample panel as background jobs (one worker thread).

A job runs one interpretability tool (those with `from_sample`, see `workbench.interp.tools`) on a stored
sample with the model of the run that produced it (for a quantized run, the same weights unquantized, as the
artifact's parameters record), saves the artifact through `workbench.interp.artifacts.save` (atomic
publish) with the sample linked as its source, and reports its phase so the page can poll it. The model
spec is never taken from the browser.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.interp.tools import sample_tools

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    tool: str
    run_id: str
    key: str
    model: str                      # the spec the tool runs on
    run_model: str = ""             # the run's own spec, when it differs (a quantized run)
    note: str | None = None         # why it differs
    status: str = "queued"          # queued | running | done | failed
    phase: str = "waiting for the worker"
    artifact_id: str | None = None
    error: str | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class JobRunner:
    """Runs jobs one at a time (a model is a few hundred MB; the machine has few cores); keeps the last model."""

    def __init__(self, store_root: Path, artifacts_root: Path) -> None:
        self.store_root, self.artifacts_root = store_root, artifacts_root
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._model: tuple[str, Any] | None = None

    @staticmethod
    def weights_for(model_spec: str) -> tuple[str, str | None]:
        """(the spec a job for a run of `model_spec` loads, why it differs); ModelError if none can run."""
        from workbench.interp.hooks import torch_weights

        return torch_weights(model_spec)

    def submit(self, tool_name: str, run_id: str, key: str, model_spec: str) -> Job:
        if tool_name not in sample_tools():
            raise WorkbenchError(f"unknown tool {tool_name!r}; choose from {', '.join(sample_tools())}")
        spec, note = self.weights_for(model_spec)
        job = Job(uuid.uuid4().hex[:12], tool_name, run_id, key, spec, run_model=model_spec if note else "", note=note)
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _hooked(self, spec: str) -> Any:
        from workbench.interp.hooks import load_hooked

        if self._model is None or self._model[0] != spec:
            self._model = None  # free the previous model before loading the next
            self._model = (spec, load_hooked(spec))
        return self._model[1]

    def _run(self, job: Job) -> None:
        from workbench.interp import artifacts
        from workbench.interp.sources import from_run
        from workbench.interp.tools import TOOLS

        job.status = "running"
        try:
            task, _, doc = job.key.rpartition("#")
            src = from_run(job.run_id, doc, task=task, store=self.store_root)
            job.phase = f"loading {job.model}"
            model = self._hooked(job.model)
            job.phase = f"running {job.tool}"
            result = TOOLS.get(job.tool).on_sample(model, src, self.artifacts_root)
            if job.note:
                result.meta.params.update(run_model=job.run_model, weights=job.note)
            job.phase = "saving"
            job.artifact_id = artifacts.save(result, self.artifacts_root)
            job.status, job.phase = "done", "done"
        except WorkbenchError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # a job must never take the server down; report it on the page
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("job %s (%s on %s#%s) failed", job.id, job.tool, job.run_id, job.key)


__all__ = ["Job", "JobRunner"]
