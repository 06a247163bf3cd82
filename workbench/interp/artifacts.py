"""The artifact store: one directory per interpretability result, published atomically.

Layout under the artifact root (`--artifacts DIR`, else `$WORKBENCH_ARTIFACTS`, else ./workbench-artifacts)::

    <artifact_id>/            created by one atomic rename, never half-written
        manifest.json         id, kind, created, model (spec, sha256, checkpoint), prompts, token strings,
                              tool parameters, package versions, source (run/sample link) or null,
                              data (the result's scalar and small JSON fields), files
        arrays.safetensors    the result's numpy arrays, one tensor per field name
        <field>.parquet       the result's tables, one file per field name
    .partial/<artifact_id>/   being written

Each kind is a dataclass registered with `@register_kind("name")`: its `meta` field holds the
provenance, ndarray fields go to safetensors, DataFrame fields to Parquet, the rest to the manifest.
`load(id)` returns that dataclass.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

import numpy as np

from workbench.errors import StoreError
from workbench.interp.errors import ArtifactError
from workbench.store import PARTIAL, validate_run_id, write_json_atomic

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.safetensors"
# Tool modules define the kinds; importing them registers each (as models/ does for backends).
KIND_MODULES = ("attention", "patching", "probe", "attribute", "logit_lens", "drift")
_KINDS: dict[str, type] = {}
_VERSIONED = ("torch", "transformers", "transformer_lens", "captum", "numpy", "safetensors", "sklearn")
R = TypeVar("R")


def artifacts_dir(override: str | os.PathLike | None = None) -> Path:
    """The artifact root: --artifacts, else WORKBENCH_ARTIFACTS, else ./workbench-artifacts."""
    return Path(override or os.environ.get("WORKBENCH_ARTIFACTS") or "workbench-artifacts").expanduser().resolve()


def validate_artifact_id(artifact_id: str) -> str:
    """The id, or ArtifactError for anything that could leave the root ('/', '..', empty)."""
    try:
        return validate_run_id(artifact_id)
    except StoreError:
        raise ArtifactError(f"invalid artifact id {artifact_id!r}: use letters, digits, '.', '_' and '-' only") from None


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
        _KINDS[kind] = cls
        return cls

    return deco


def kinds() -> dict[str, type]:
    for mod in KIND_MODULES:
        importlib.import_module(f"workbench.interp.{mod}")
    return dict(_KINDS)


def make_meta(kind: str, model: Any, prompts: Iterable[str], token_ids: Any, params: dict[str, Any],
              source: dict[str, Any] | None = None) -> Meta:
    """Provenance for a result computed on `model` (a HookedModel) from `prompts` (ids [batch, pos])."""
    rows = token_ids.tolist() if hasattr(token_ids, "tolist") else list(token_ids)
    return Meta(kind=kind, model={"spec": model.ref.spec, "sha256": model.ref.sha256,
                                  "checkpoint": str(model.ref.checkpoint)},
                prompts=list(prompts), tokens=[model.token_strings(r) for r in rows], params=dict(params),
                source=source)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        dist = {"transformer_lens": "transformer-lens", "sklearn": "scikit-learn"}.get(name, name)
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            pass
    import workbench

    out["workbench"] = workbench.__version__
    return out


def _new_id(kind: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:8]}"


def save(result: Any, root: str | os.PathLike | None = None) -> str:
    """Publish a registered result as a new artifact; returns its id."""
    kind = getattr(type(result), "kind", None)
    if kind is None or _KINDS.get(kind) is not type(result):
        raise ArtifactError(f"{type(result).__name__} is not a registered artifact kind")
    base = artifacts_dir(root)
    meta: Meta = result.meta
    meta.kind = kind
    meta.id = validate_artifact_id(meta.id or _new_id(kind))
    meta.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    meta.versions = package_versions()
    tmp = base / PARTIAL / meta.id
    final = base / meta.id
    if final.exists():
        raise ArtifactError(f"artifact {meta.id} already exists in {base}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays, tables, data = _split(result)
    files = []
    if arrays:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / ARRAYS_FILE))
        files.append(ARRAYS_FILE)
    for name, df in tables.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
        files.append(f"{name}.parquet")
    manifest = {"format": FORMAT_VERSION, **{k: v for k, v in dataclasses.asdict(meta).items() if k != "path"},
                "data": data, "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
                "tables": sorted(tables), "files": files}
    write_json_atomic(tmp / "manifest.json", manifest)
    os.replace(tmp, final)
    meta.path = final
    return meta.id


def _split(result: Any) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    import pandas as pd

    arrays, tables, data = {}, {}, {}
    for f in dataclasses.fields(result):
        if f.name == "meta":
            continue
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
        elif isinstance(value, pd.DataFrame):
            tables[f.name] = value
        else:
            data[f.name] = value
    return arrays, tables, data


def read_manifest(artifact_id: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    path = artifacts_dir(root) / validate_artifact_id(artifact_id)
    if not (path / "manifest.json").is_file():
        raise ArtifactError(f"no artifact {artifact_id} in {artifacts_dir(root)}")
    try:
        return json.loads((path / "manifest.json").read_text())
    except ValueError as exc:
        raise ArtifactError(f"artifact {artifact_id} has a corrupt manifest.json: {exc}") from None


def load(artifact_id: str, root: str | os.PathLike | None = None) -> Any:
    """The typed result stored as `artifact_id` (e.g. an AttentionResult)."""
    import pandas as pd

    manifest = read_manifest(artifact_id, root)
    path = artifacts_dir(root) / artifact_id
    cls = kinds().get(manifest.get("kind"))
    if cls is None:
        raise ArtifactError(f"artifact {artifact_id} has unknown kind {manifest.get('kind')!r}")
    values: dict[str, Any] = dict(manifest.get("data", {}))
    if manifest.get("arrays"):
        from safetensors.numpy import load_file

        values.update(load_file(str(path / ARRAYS_FILE)))
    for name in manifest.get("tables", []):
        values[name] = pd.read_parquet(path / f"{name}.parquet")
    meta_fields = {f.name for f in dataclasses.fields(Meta)}
    meta = Meta(**{k: v for k, v in manifest.items() if k in meta_fields and k != "path"}, path=path)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(meta=meta, **{k: v for k, v in values.items() if k in names})


def list_artifacts(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Manifests of complete artifacts, oldest first."""
    base = artifacts_dir(root)
    if not base.is_dir():
        return []
    out = []
    for path in base.iterdir():
        if path.name.startswith(".") or not (path / "manifest.json").is_file():
            continue
        try:
            out.append(json.loads((path / "manifest.json").read_text()))
        except ValueError:
            continue
    return sorted(out, key=lambda m: (m.get("created") or "", m.get("id") or ""))
