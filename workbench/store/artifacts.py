"""The artifact store: one directory per interpretability result, published atomically.

Layout under the artifact root (`--artifacts DIR`, else `$WORKBENCH_ARTIFACTS`, else ./workbench-artifacts)::

    <artifact_id>/            created by one atomic rename, never half-written
        manifest.json         id, kind, created, provenance, `data` (scalars and small JSON), `arrays`
                              (shapes, dtypes), `tables`, `files` and their sha256 (`sha256`)
        arrays.safetensors    numpy arrays, one tensor per name
        <name>.parquet        tables, one file per name
    .partial/<artifact_id>/   being written

This module knows files, not result types: `workbench.interp.artifacts` maps each tool's result
dataclass to a manifest, arrays and tables and back.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from workbench import settings
from workbench.errors import StoreError
from workbench.store.publish import (
    digests,
    disk_errors,
    ensure_root,
    fresh_staging,
    publish_dir,
    read_json,
    validate_id,
    verify_digests,
    write_json_atomic,
)

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.safetensors"
MANIFEST = "manifest.json"


# The manifest fields readers rely on, and their JSON types (a field may be absent in older artifacts).
# `created` and `source` are only shown, and shown whatever their type, so an odd one is no reason to refuse.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "model": dict, "prompts": list, "tokens": list, "params": dict, "versions": dict, "data": dict,
    "arrays": dict, "tables": list, "files": list, "sha256": dict,
}


class ArtifactError(StoreError):
    """Unknown, invalid, damaged or unloadable artifact."""


def validate_artifact_id(artifact_id: str) -> str:
    """The id, or ArtifactError for anything that could leave the root ('/', '..', empty)."""
    return validate_id(artifact_id, "artifact id", ArtifactError)


def validate_blob_path(rel: str) -> str:
    """A relative path inside an artifact (no '..', not absolute, not hidden, not a reserved name)."""
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or any(not p or p.startswith(".") for p in parts)
            or rel in (MANIFEST, ARRAYS_FILE) or rel.endswith(".parquet")):
        raise ArtifactError(f"invalid file name {rel!r} inside an artifact")
    return rel


def new_artifact_id(kind: str) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}"


class ArtifactStore:
    """Reads and writes artifacts under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = settings.artifacts_dir(root)

    def path(self, artifact_id: str) -> Path:
        return self.root / validate_artifact_id(artifact_id)

    def save(self, manifest: dict[str, Any], arrays: dict[str, np.ndarray], tables: dict[str, Any],
             blobs: dict[str, bytes] | None = None) -> Path:
        """Write arrays (safetensors), tables (Parquet), blobs (files in another library's own format, by
        relative path) and the manifest, then publish in one rename."""
        aid = validate_artifact_id(manifest["id"])
        ensure_root(self.root, "artifact root")
        final = self.root / aid
        if final.exists():
            raise ArtifactError(f"artifact {aid} already exists in {self.root}")
        with disk_errors(f"artifact {aid} (nothing was published)"):
            tmp = fresh_staging(self.root, aid)
            files = []
            if arrays:
                from safetensors.numpy import save_file

                save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / ARRAYS_FILE))
                files.append(ARRAYS_FILE)
            for name, df in tables.items():
                df.to_parquet(tmp / f"{name}.parquet", index=False)
                files.append(f"{name}.parquet")
            for rel, content in (blobs or {}).items():
                path = tmp / validate_blob_path(rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                files.append(rel)
            manifest = {"format": FORMAT_VERSION, **manifest,
                        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
                        "tables": sorted(tables), "files": files, "sha256": digests(tmp, files)}
            write_json_atomic(tmp / MANIFEST, manifest)
            publish_dir(tmp, final)
        return final

    def read_manifest(self, artifact_id: str) -> dict[str, Any]:
        path = self.path(artifact_id)
        if not (path / MANIFEST).is_file():
            raise ArtifactError(f"no artifact {artifact_id} in {self.root}")
        try:
            manifest = read_json(path / MANIFEST, f"artifact {artifact_id}")
        except StoreError as exc:
            raise ArtifactError(str(exc)) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("kind"), str):
            raise ArtifactError(f"artifact {artifact_id}: {path / MANIFEST} is not an artifact manifest (no kind)")
        wrong = [k for k, types in _FIELDS.items() if k in manifest and not isinstance(manifest[k], types)]
        wrong += [k for k in ("prompts", "files", "tables") if k not in wrong and k in manifest
                  and not all(isinstance(x, str) for x in manifest[k])]
        if wrong:
            raise ArtifactError(f"artifact {artifact_id}: {path / MANIFEST} is not an artifact manifest "
                                f"(wrong type of {', '.join(wrong)})")
        if manifest.get("id") != artifact_id:
            raise ArtifactError(f"artifact {artifact_id}: its manifest names another id ({manifest.get('id')!r})")
        return manifest

    def verify(self, artifact_id: str, manifest: dict[str, Any] | None = None) -> list[str]:
        """Problems with the artifact's files; [] when every recorded digest matches."""
        manifest = manifest or self.read_manifest(artifact_id)
        recorded = manifest.get("sha256")
        if not recorded:
            return [f"artifact {artifact_id}: written before file digests were recorded; cannot verify"]
        return verify_digests(self.path(artifact_id), recorded, f"artifact {artifact_id}")

    def load_files(self, artifact_id: str, manifest: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, tables) of an artifact, after checking their digests."""
        import pandas as pd

        path = self.path(artifact_id)
        problems = self.verify(artifact_id, manifest) if manifest.get("sha256") else []
        if problems:
            raise ArtifactError(problems[0])
        arrays: dict[str, np.ndarray] = {}
        tables: dict[str, Any] = {}
        try:
            if manifest.get("arrays"):
                from safetensors.numpy import load_file

                arrays = load_file(str(path / ARRAYS_FILE))
            for name in manifest.get("tables", []):
                tables[name] = pd.read_parquet(path / f"{name}.parquet")
        except Exception as exc:  # safetensors / pyarrow raise several types for a damaged file
            raise ArtifactError(f"artifact {artifact_id}: cannot read its files ({type(exc).__name__}: {exc})") from None
        return arrays, tables

    def read_blob(self, artifact_id: str, rel: str) -> bytes:
        """One file stored in another library's format (its digest is checked by `load_files`/`verify`)."""
        path = self.path(artifact_id) / validate_blob_path(rel)
        if not path.is_file():
            raise ArtifactError(f"artifact {artifact_id}: {rel} is missing")
        return path.read_bytes()

    def scan(self) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
        """(manifests of complete artifacts oldest first, [(path, why) for each unreadable entry])."""
        if not self.root.exists():
            return [], []
        if not self.root.is_dir():
            raise ArtifactError(f"artifact root {self.root} is not a directory")
        out, bad = [], []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith("."):
                continue
            try:
                out.append(self.read_manifest(path.name))
            except StoreError as exc:
                bad.append((path, str(exc)))
        return sorted(out, key=lambda m: (str(m.get("created") or ""), str(m.get("id")))), bad

    def list(self) -> list[dict[str, Any]]:
        """Manifests of complete artifacts, oldest first; unreadable entries skipped with a warning."""
        out, bad = self.scan()
        for path, why in bad:
            log.warning("skipping %s: %s", path, why)
        return out
