"""The run store: one directory per run, published atomically; partial runs journal as they go.

Layout under the store root::

    <run_id>/                 a complete run (only ever created by an atomic rename)
        manifest.json         what was run, on what, with which versions; timings
        samples.parquet       one row per (task, doc)
        metrics.json          per-task metrics with stderr and 95% bootstrap CI
    .partial/<run_id>/        a run in progress or interrupted; never listed as complete
        manifest.json         the plan (model, tasks, doc ids, chunking) needed to resume
        journal.jsonl         one line per finished chunk of docs, fsync'd as produced
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from workbench import settings
from workbench.errors import StoreError

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PARTIAL = ".partial"


def validate_run_id(run_id: str) -> str:
    """Reject ids that could escape the store (path separators, '..', empty)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise StoreError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    return run_id


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON through a temp file + rename so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@dataclass
class Run:
    """A complete run as read back from the store."""

    run_id: str
    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def samples(self):
        import pandas as pd

        return pd.read_parquet(self.path / "samples.parquet")


@dataclass
class PartialRun:
    """A run being written: its plan, and a journal of finished chunks that survives SIGKILL."""

    run_id: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def journal_path(self) -> Path:
        return self.path / "journal.jsonl"

    def save_manifest(self) -> None:
        write_json_atomic(self.path / "manifest.json", self.manifest)

    def append_chunk(self, task: str, chunk: int, rows: list[dict[str, Any]]) -> None:
        """Append one finished chunk as a single line, then fsync: a torn line is dropped on read."""
        line = json.dumps({"task": task, "chunk": chunk, "rows": rows}, default=_json_default)
        with open(self.journal_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def finished_chunks(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """Chunks whose journal line is complete; a torn final line (a kill mid-write) is discarded."""
        done: dict[tuple[str, int], list[dict[str, Any]]] = {}
        if not self.journal_path.exists():
            return done
        with open(self.journal_path, "rb") as fh:
            data = fh.read()
        good = 0
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                break
            done[(rec["task"], int(rec["chunk"]))] = rec["rows"]
            good += len(raw)
        if good != len(data):  # cut the torn tail so later appends start on a clean line
            with open(self.journal_path, "r+b") as fh:
                fh.truncate(good)
        return done


class RunStore:
    """Reads and writes runs under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = settings.store_dir(root)

    # ---- writing -------------------------------------------------------------------------
    def create(self, run_id: str, manifest: dict[str, Any]) -> PartialRun:
        validate_run_id(run_id)
        if (self.root / run_id).exists() or (self.root / PARTIAL / run_id).exists():
            raise StoreError(f"run {run_id} already exists in {self.root}")
        path = self.root / PARTIAL / run_id
        path.mkdir(parents=True)
        run = PartialRun(run_id, path, dict(manifest, run_id=run_id, status="running"))
        run.save_manifest()
        return run

    def open_partial(self, run_id: str) -> PartialRun:
        validate_run_id(run_id)
        if (self.root / run_id).exists():
            raise StoreError(f"run {run_id} is already complete; nothing to resume")
        path = self.root / PARTIAL / run_id
        if not (path / "manifest.json").exists():
            raise StoreError(f"no interrupted run {run_id} in {self.root}")
        return PartialRun(run_id, path, json.loads((path / "manifest.json").read_text()))

    def publish(self, run: PartialRun, samples, metrics: dict[str, Any]) -> Run:
        """Write the final files into the partial dir, then rename it into place in one step."""
        samples.to_parquet(run.path / "samples.parquet", index=False)
        write_json_atomic(run.path / "metrics.json", metrics)
        run.manifest["status"] = "complete"
        run.save_manifest()
        final = self.root / run.run_id
        os.replace(run.path, final)
        (final / "journal.jsonl").unlink(missing_ok=True)
        return self.load(run.run_id)

    def discard(self, run_id: str) -> None:
        shutil.rmtree(self.root / PARTIAL / validate_run_id(run_id), ignore_errors=True)

    # ---- reading -------------------------------------------------------------------------
    def load(self, run_id: str) -> Run:
        validate_run_id(run_id)
        path = self.root / run_id
        if not (path / "manifest.json").exists():
            if (self.root / PARTIAL / run_id).exists():
                raise StoreError(
                    f"run {run_id} is incomplete (interrupted?); resume it with "
                    f"`workbench eval --resume {run_id}`"
                )
            raise StoreError(f"no run {run_id} in {self.root}")
        manifest = json.loads((path / "manifest.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
        return Run(run_id, path, manifest, metrics)

    def list(self) -> list[Run]:
        """Complete runs, oldest first."""
        if not self.root.exists():
            return []
        runs = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not (path / "manifest.json").exists():
                continue
            runs.append(self.load(path.name))
        return sorted(runs, key=lambda r: r.manifest.get("created", ""))

    def partial(self) -> Iterator[PartialRun]:
        base = self.root / PARTIAL
        if base.exists():
            for path in sorted(base.iterdir()):
                if (path / "manifest.json").exists():
                    yield PartialRun(path.name, path, json.loads((path / "manifest.json").read_text()))
