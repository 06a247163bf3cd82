"""The run store: one directory per run, published atomically; partial runs journal as they go.

Layout under the store root::

    <run_id>/                 a complete run (only ever created by an atomic rename)
        manifest.json         what was run, on what, with which versions; timings; the sha256 of
                              samples.parquet and metrics.json (`files`), checked when they are read
        samples.parquet       one row per (task, doc)
        metrics.json          per-task metrics with stderr and 95% bootstrap CI
    .partial/<run_id>/        a run in progress or interrupted; never listed as complete
        manifest.json         the plan (model, tasks, doc ids, chunking) needed to resume
        journal.jsonl         one line per finished chunk of docs, fsync'd as produced
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import settings
from workbench.errors import StoreError
from workbench.store.publish import (
    PARTIAL,
    digests,
    disk_errors,
    ensure_root,
    json_default,
    publish_dir,
    read_json,
    validate_id,
    verify_digests,
    write_json_atomic,
)

log = logging.getLogger(__name__)
SAMPLES, METRICS, MANIFEST, JOURNAL = "samples.parquet", "metrics.json", "manifest.json", "journal.jsonl"


def validate_run_id(run_id: str) -> str:
    """Reject ids that could escape the store (path separators, '..', empty)."""
    return validate_id(run_id, "run id")


_ESTIMATE = ("value", "stderr", "ci95_low", "ci95_high", "n")


def is_metrics(obj: Any) -> bool:
    """Whether `obj` has the shape of a metrics.json: {tasks|groups: {name: {metric: {value, stderr, ...}}}}."""
    def number(v: Any) -> bool:
        return v is None or (isinstance(v, int | float) and not isinstance(v, bool))

    def estimate(e: Any) -> bool:
        return isinstance(e, dict) and all(k in e and number(e[k]) for k in _ESTIMATE)

    if not isinstance(obj, dict):
        return False
    for section in (obj.get("tasks", {}), obj.get("groups", {})):
        if not isinstance(section, dict):
            return False
        for per_scope in section.values():
            if not isinstance(per_scope, dict) or not all(estimate(e) for e in per_scope.values()):
                return False
    return True


def is_run_manifest(obj: Any) -> bool:
    """Whether `obj` has the shape of a complete run's manifest.json (the fields the readers rely on)."""
    return (isinstance(obj, dict) and isinstance(obj.get("model"), dict) and isinstance(obj.get("tasks"), dict)
            and all(isinstance(t, dict) for t in obj["tasks"].values())
            and isinstance(obj.get("files", {}), dict) and isinstance(obj.get("created", ""), str)
            and isinstance(obj.get("n_samples", 0), int))


@dataclass
class Run:
    """A complete run as read back from the store."""

    run_id: str
    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def samples(self):
        """The per-sample frame; StoreError if the file was edited or damaged since it was written."""
        import pandas as pd

        recorded = self.manifest.get("files", {}).get(SAMPLES)
        if recorded:
            problems = verify_digests(self.path, {SAMPLES: recorded}, f"run {self.run_id}")
            if problems:
                raise StoreError(problems[0])
        try:
            return pd.read_parquet(self.path / SAMPLES)
        except FileNotFoundError:
            raise StoreError(f"run {self.run_id}: {SAMPLES} is missing") from None
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StoreError(f"run {self.run_id}: {SAMPLES} is unreadable ({type(exc).__name__}: {exc})") from None

    def verify(self) -> list[str]:
        """Problems with the run's files (one line each); [] when every recorded digest matches."""
        recorded = self.manifest.get("files")
        if not recorded:
            return [f"run {self.run_id}: written before file digests were recorded; cannot verify"]
        return verify_digests(self.path, recorded, f"run {self.run_id}")


@dataclass
class PartialRun:
    """A run being written: its plan, and a journal of finished chunks that survives SIGKILL."""

    run_id: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL

    def writing(self, what: str) -> AbstractContextManager[None]:
        """disk_errors for one of the run's files, the message saying how to resume once there is room."""
        return disk_errors(f"run {self.run_id}'s {what}; the run is kept: resume it with "
                           f"`workbench eval --resume {self.run_id}` once there is room")

    def save_manifest(self) -> None:
        with self.writing("manifest"):
            write_json_atomic(self.path / MANIFEST, self.manifest)

    def append_chunk(self, task: str, chunk: int, rows: list[dict[str, Any]]) -> None:
        """Append one finished chunk as a single line, then fsync: a torn line is dropped on read."""
        line = json.dumps({"task": task, "chunk": chunk, "rows": rows}, default=json_default)
        with self.writing("journal"), open(self.journal_path, "a", encoding="utf-8") as fh:
            try:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                fh.close()
                self.finished_chunks()  # cut the torn line now, so the journal stays resumable
                raise

    def finished_chunks(self) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """Chunks whose journal line is complete; a torn final line (a kill mid-write) is discarded."""
        done: dict[tuple[str, int], list[dict[str, Any]]] = {}
        if not self.journal_path.exists():
            return done
        with open(self.journal_path, "rb") as fh:
            data = fh.read()
        good = 0
        for n, raw in enumerate(data.splitlines(keepends=True), 1):
            if not raw.endswith(b"\n"):
                break
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not (isinstance(rec, dict) and isinstance(rec.get("task"), str) and isinstance(rec.get("rows"), list)
                    and isinstance(rec.get("chunk"), int) and all(isinstance(r, dict) for r in rec["rows"])):
                raise StoreError(f"run {self.run_id}: {self.journal_path} line {n} is not a journal record")
            done[(rec["task"], rec["chunk"])] = rec["rows"]
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
    def check_new(self, run_id: str) -> None:
        """StoreError unless `run_id` is a valid id not yet used in a store that can be written."""
        validate_run_id(run_id)
        self.ensure_root()
        if (self.root / run_id).exists() or (self.root / PARTIAL / run_id).exists():
            raise StoreError(f"run {run_id} already exists in {self.root}")

    def create(self, run_id: str, manifest: dict[str, Any]) -> PartialRun:
        self.check_new(run_id)
        path = self.root / PARTIAL / run_id
        with disk_errors(f"run {run_id} in {self.root}"):
            path.mkdir(parents=True)
        run = PartialRun(run_id, path, dict(manifest, run_id=run_id, status="running"))
        run.save_manifest()
        return run

    def open_partial(self, run_id: str) -> PartialRun:
        validate_run_id(run_id)
        self._check_root()
        if (self.root / run_id).exists():
            raise StoreError(f"run {run_id} is already complete; nothing to resume")
        path = self.root / PARTIAL / run_id
        if not (path / MANIFEST).exists():
            raise StoreError(f"no interrupted run {run_id} in {self.root}")
        manifest = read_json(path / MANIFEST, f"interrupted run {run_id}")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("request"), dict) \
                or not isinstance(manifest.get("tasks"), dict):
            raise StoreError(f"interrupted run {run_id}: {path / MANIFEST} is not a run manifest; it cannot be resumed")
        return PartialRun(run_id, path, manifest)

    def publish(self, run: PartialRun, samples, metrics: dict[str, Any]) -> Run:
        """Write the final files into the partial dir, record their digests, then rename it into place."""
        with run.writing("results"):
            try:
                samples.to_parquet(run.path / SAMPLES, index=False)
                write_json_atomic(run.path / METRICS, metrics)
            except BaseException:
                (run.path / SAMPLES).unlink(missing_ok=True)
                (run.path / METRICS).unlink(missing_ok=True)
                raise
        run.manifest["files"] = digests(run.path, [SAMPLES, METRICS])
        run.manifest["status"] = "complete"
        run.save_manifest()
        final = self.root / run.run_id
        with run.writing("directory"):
            publish_dir(run.path, final)
        (final / JOURNAL).unlink(missing_ok=True)
        return self.load(run.run_id)

    # ---- reading -------------------------------------------------------------------------
    def ensure_root(self) -> None:
        """Create the store root, or StoreError if it is a file, under a file, or not writable."""
        ensure_root(self.root, "run store")

    def load(self, run_id: str) -> Run:
        """A complete run; StoreError naming the file if it is missing, corrupt or was edited."""
        validate_run_id(run_id)
        self._check_root()
        path = self.root / run_id
        if not (path / MANIFEST).exists():
            if (self.root / PARTIAL / run_id).exists():
                raise StoreError(
                    f"run {run_id} is incomplete (interrupted?); resume it with "
                    f"`workbench eval --resume {run_id}`"
                )
            raise StoreError(f"no run {run_id} in {self.root}")
        manifest = read_json(path / MANIFEST, f"run {run_id}")
        if not is_run_manifest(manifest):
            raise StoreError(f"run {run_id}: {path / MANIFEST} is not a run manifest")
        recorded = manifest.get("files", {}).get(METRICS)
        if recorded:
            problems = verify_digests(path, {METRICS: recorded}, f"run {run_id}")
            if problems:
                raise StoreError(problems[0])
        metrics = read_json(path / METRICS, f"run {run_id}")
        if not is_metrics(metrics):
            raise StoreError(f"run {run_id}: {path / METRICS} is not a metrics file")
        return Run(run_id, path, manifest, metrics)

    def _check_root(self) -> bool:
        if not self.root.exists():
            return False
        if not self.root.is_dir():
            raise StoreError(f"run store {self.root} is not a directory")
        return True

    def scan(self) -> tuple[list[Run], list[tuple[Path, str]]]:
        """(complete runs oldest first, [(path, why) for each entry that could not be read])."""
        if not self._check_root():
            return [], []
        runs, bad = [], []
        try:
            entries = sorted(self.root.iterdir())
        except OSError as exc:
            raise StoreError(f"cannot read run store {self.root}: {exc.strerror or exc}") from None
        for path in entries:
            if path.name.startswith("."):
                continue
            if not path.is_dir():
                bad.append((path, "not a run directory"))
                continue
            try:
                runs.append(self.load(path.name))
            except StoreError as exc:
                bad.append((path, str(exc)))
        runs.sort(key=lambda r: str(r.manifest.get("created", "")))
        return runs, bad

    def list(self) -> list[Run]:
        """Complete runs, oldest first; unreadable entries are skipped with a logged warning."""
        runs, bad = self.scan()
        for path, why in bad:
            log.warning("skipping %s: %s", path, why)
        return runs

    def partial(self) -> Iterator[PartialRun]:
        base = self.root / PARTIAL
        if self._check_root() and base.is_dir():
            for path in sorted(base.iterdir()):
                if (path / MANIFEST).exists():
                    try:
                        yield PartialRun(path.name, path, read_json(path / MANIFEST, f"interrupted run {path.name}"))
                    except StoreError as exc:
                        log.warning("skipping %s: %s", path, exc)
