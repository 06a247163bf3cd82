"""Contamination results: per-item n-gram overlap (and membership scores) of benchmark items against a
corpus, kept beside the runs they describe and never inside them.

Layout under the run store root::

    .contamination/<result_id>/   published by one atomic rename (the artifact store's format)
        manifest.json             corpus files and their sha256, n-gram size, normalisation, tasks and
                                  their prompt hashes, model for Min-K% Prob, summary; sha256 of items.parquet
        items.parquet             one row per item: task, doc_id, prompt_hash (the run store's item key),
                                  n_ngrams, n_matched, overlap, contaminated, and mink_prob / member if asked

The hidden directory keeps results out of the run listing; a run is joined to a result by item key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from workbench import settings
from workbench.errors import StoreError
from workbench.store.artifacts import ArtifactError, ArtifactStore, new_artifact_id

KIND = "contamination"
DIRNAME = ".contamination"
TABLE = "items"
KEY = ("task", "doc_id", "prompt_hash")


class ContaminationError(StoreError):
    """A contamination result that does not exist, is damaged, or cannot be written."""


@dataclass
class ContaminationResult:
    """A stored result: its manifest and the per-item table."""

    result_id: str
    manifest: dict[str, Any]
    items: Any  # pandas.DataFrame


class ContaminationStore:
    """Contamination results of one run store."""

    def __init__(self, store: str | os.PathLike | None = None) -> None:
        self.store_root = settings.store_dir(store)
        self.artifacts = ArtifactStore(self.store_root / DIRNAME)

    def save(self, manifest: dict[str, Any], items: Any) -> ContaminationResult:
        """Publish a new result (atomically) and return it with its id."""
        missing = [c for c in KEY if c not in items.columns]
        if missing:
            raise ContaminationError(f"contamination table lacks item key column(s) {', '.join(missing)}")
        rid = new_artifact_id(KIND)
        full = {"id": rid, "kind": KIND, **manifest}
        try:
            self.artifacts.save(full, {}, {TABLE: items})
        except ArtifactError as exc:
            raise ContaminationError(str(exc)) from None
        return self.load(rid)

    def load(self, result_id: str) -> ContaminationResult:
        """A stored result, after checking its files' digests."""
        try:
            manifest = self.artifacts.read_manifest(result_id)
        except ArtifactError as exc:
            if self._exists(result_id):
                raise ContaminationError(f"contamination result {result_id} is damaged: {exc}") from None
            raise ContaminationError(f"no contamination result {result_id!r} in {self.store_root} "
                                     "(see `workbench contamination --list`)") from None
        if manifest.get("kind") != KIND:
            raise ContaminationError(f"{result_id} is not a contamination result")
        try:
            _, tables = self.artifacts.load_files(result_id, manifest)
        except ArtifactError as exc:
            raise ContaminationError(str(exc)) from None
        if TABLE not in tables:
            raise ContaminationError(f"contamination result {result_id} has no {TABLE} table")
        return ContaminationResult(result_id, manifest, tables[TABLE])

    def _exists(self, result_id: str) -> bool:
        try:
            return self.artifacts.path(result_id).exists()
        except ArtifactError:  # not a valid id
            return False

    def list(self) -> list[dict[str, Any]]:
        """Manifests of the stored results, oldest first."""
        return [m for m in self.artifacts.list() if m.get("kind") == KIND]


__all__ = ["ContaminationError", "ContaminationResult", "ContaminationStore", "KEY"]
