"""Interpretability results as artifacts: each tool's result dataclass <-> the artifact store's files.

Each kind is a dataclass registered with `@register_kind("name")` in its tool's module: its `meta`
field holds the provenance, ndarray fields go to safetensors, DataFrame fields to Parquet, the rest
to the manifest's `data`. `load(id)` returns that dataclass; the files are `workbench.store.artifacts`.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from workbench.errors import WorkbenchError
from workbench.registry import Registry
from workbench.store.artifacts import (
    ARRAYS_FILE,
    FORMAT_VERSION,
    ArtifactError,
    ArtifactStore,
    new_artifact_id,
    validate_artifact_id,
)
from workbench.store.provenance import package_versions, utc_now

R = TypeVar("R")
# The tool modules of this package define the kinds; the registry imports them on first use.
KINDS: Registry[type] = Registry("artifact kind", package="workbench.interp", error=ArtifactError)
_VERSIONED = ("torch", "transformers", "transformer_lens", "captum", "numpy", "safetensors", "scikit-learn")


class Blobs(dict):
    """Files kept in another library's own format (relative path -> bytes), e.g. an SAE's `sae/cfg.json`
    and `sae/sae.safetensors`; stored as they are inside the artifact directory."""


def artifacts_dir(override: str | os.PathLike | None = None) -> Path:
    return ArtifactStore(override).root


@dataclass
class Meta:
    """Provenance of one artifact; `id`, `created` and `versions` are set when it is saved."""

    kind: str
    model: dict[str, Any]
    prompts: list[str]
    tokens: list[list[str]]
    params: dict[str, Any]
    source: dict[str, Any] | None = None
    id: str | None = None
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


def register_kind(kind: str):
    """Class decorator: a result dataclass (first field `meta: Meta`) stored as artifact kind `kind`."""

    def deco(cls: type[R]) -> type[R]:
        if not dataclasses.is_dataclass(cls) or "meta" not in {f.name for f in dataclasses.fields(cls)}:
            raise TypeError(f"{cls.__name__} must be a dataclass with a `meta: Meta` field")
        cls.kind = kind  # type: ignore[attr-defined]
        KINDS.register(kind, cls)
        return cls

    return deco


def kinds() -> dict[str, type]:
    return {e.name: e.obj for e in KINDS.entries()}


def make_meta(kind: str, model: Any, prompts: Iterable[str], token_ids: Any, params: dict[str, Any],
              source: dict[str, Any] | None = None) -> Meta:
    """Provenance for a result computed on `model` (a HookedModel) from `prompts` (ids [batch, pos])."""
    rows = token_ids.tolist() if hasattr(token_ids, "tolist") else list(token_ids)
    return Meta(kind=kind, model={"spec": model.ref.spec, "sha256": model.ref.sha256,
                                  "checkpoint": str(model.ref.checkpoint)},
                prompts=list(prompts), tokens=[model.token_strings(r) for r in rows], params=dict(params),
                source=source)


def save(result: Any, root: str | os.PathLike | None = None) -> str:
    """Publish a registered result as a new artifact; returns its id."""
    import pandas as pd

    kind = getattr(type(result), "kind", None)
    if kind is None or kind not in KINDS or KINDS.get(kind) is not type(result):
        raise ArtifactError(f"{type(result).__name__} is not a registered artifact kind")
    meta: Meta = result.meta
    meta.kind = kind
    meta.id = validate_artifact_id(meta.id or new_artifact_id(kind))
    meta.created = utc_now()
    meta.versions = package_versions(_VERSIONED)
    arrays, tables, data, blobs, blob_fields = {}, {}, {}, {}, {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if f.name == "meta":
            continue
        if isinstance(value, Blobs):
            blobs.update(value)
            blob_fields[f.name] = sorted(value)
        elif isinstance(value, np.ndarray):
            arrays[f.name] = value
        elif isinstance(value, pd.DataFrame):
            tables[f.name] = value
        else:
            data[f.name] = value
    manifest = {**{k: v for k, v in dataclasses.asdict(meta).items() if k != "path"}, "data": data}
    if blob_fields:
        manifest["blobs"] = blob_fields
    meta.path = ArtifactStore(root).save(manifest, arrays, tables, blobs)
    return meta.id


def read_manifest(artifact_id: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    return ArtifactStore(root).read_manifest(artifact_id)


def load(artifact_id: str, root: str | os.PathLike | None = None) -> Any:
    """The typed result stored as `artifact_id` (e.g. an AttentionResult)."""
    store = ArtifactStore(root)
    manifest = store.read_manifest(artifact_id)
    try:
        cls = KINDS.get(manifest["kind"])
    except ArtifactError as exc:
        raise ArtifactError(f"artifact {artifact_id}: {exc}") from None
    arrays, tables = store.load_files(artifact_id, manifest)
    values: dict[str, Any] = {**dict(manifest.get("data") or {}), **arrays, **tables}
    for name, rels in (manifest.get("blobs") or {}).items():
        values[name] = Blobs({rel: store.read_blob(artifact_id, rel) for rel in rels})
    meta_fields = {f.name for f in dataclasses.fields(Meta)}
    try:
        meta = Meta(**{k: v for k, v in manifest.items() if k in meta_fields and k != "path"},
                    path=store.path(artifact_id))
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        wrong = sorted(k for k, v in values.items() if k in names and not _fits(v, hints.get(k, Any)))
        if wrong:
            raise TypeError(f"wrong type of {', '.join(wrong)}")
        return cls(meta=meta, **{k: v for k, v in values.items() if k in names})
    except (TypeError, WorkbenchError) as exc:
        raise ArtifactError(f"artifact {artifact_id} does not fit its kind {manifest['kind']!r}: {exc}") from None


def _fits(value: Any, hint: Any) -> bool:
    """Whether a stored value has the type a result field declares (JSON numbers: an int fits a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return True
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict) and (len(args) < 2 or all(_fits(v, args[1]) for v in value.values()))
    return isinstance(value, hint) if isinstance(hint, type) else True


def list_artifacts(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Manifests of complete artifacts, oldest first (unreadable ones skipped with a warning)."""
    return ArtifactStore(root).list()


__all__ = ["ARRAYS_FILE", "FORMAT_VERSION", "KINDS", "ArtifactError", "Blobs", "Meta", "artifacts_dir", "kinds", "list_artifacts",
           "load", "make_meta", "read_manifest", "register_kind", "save", "validate_artifact_id"]
