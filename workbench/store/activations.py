"""The activation store: corpora of model activations on disk, sharded, float16, keyed by (document, position).

Layout under the root (`--activations DIR`, else `$WORKBENCH_ACTIVATIONS`, else ./workbench-activations)::

    <corpus_id>/
        manifest.json               model, sites (hook name -> width), parameters, text sources, status
        shard-00000.safetensors     tokens [n] int32, doc [n] int64, pos [n] int32; one float16 [n, width]
                                    per site; per-site unit statistics (min./max./sum./sumsq.<site>, float32)
        shard-00000.json            written last: the shard's sha256, token and document counts, its
                                    documents (id, source reference) and the data files they came from

A shard is complete when its JSON exists and the safetensors file matches the sha256 it records;
anything else in the directory is an interrupted write that a resumed collection redoes. Documents
never cross shards, so a context window around (doc, pos) is always inside one shard. This module
knows files, not models: the collector is `workbench.interp.collect`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench import settings
from workbench.errors import StoreError
from workbench.store.publish import (
    disk_errors,
    ensure_root,
    read_json,
    sha256_file,
    validate_id,
    write_json_atomic,
)

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KEYS = ("tokens", "doc", "pos")
STATS = ("min", "max", "sum", "sumsq")
_SHARD = re.compile(r"^shard-(\d{5})\.json$")


class ActivationError(StoreError):
    """Unknown, incomplete or damaged activation corpus."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def unit_stats(acts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-unit min, max, sum and sum of squares of one shard's [n, width] activations (float32)."""
    x = acts.astype(np.float32)
    return {"min": x.min(0), "max": x.max(0), "sum": x.sum(0, dtype=np.float64).astype(np.float32),
            "sumsq": np.square(x).sum(0, dtype=np.float64).astype(np.float32)}


class Corpus:
    """One stored corpus: its manifest and its complete shards."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path, self.manifest = path, manifest
        self.id = path.name
        self._verified: set[tuple[int, int, int]] = set()

    # ---- description ----
    @property
    def sites(self) -> dict[str, int]:
        """Stored hook names -> their width."""
        return dict(self.manifest["sites"])

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    def require(self, site: str) -> None:
        """ActivationError unless the corpus stores `site`."""
        if site not in self.sites:
            raise ActivationError(f"corpus {self.id} has no activations at {site} (it stores: "
                                  f"{', '.join(self.sites)}); collect them with `workbench interp collect`")

    def shards(self) -> list[dict[str, Any]]:
        """Records of the complete shards, in order (the run of indexes 0, 1, ... that all have a record)."""
        found = {}
        for p in self.path.iterdir():
            m = _SHARD.match(p.name)
            if m:
                found[int(m.group(1))] = p
        out = []
        for i in range(len(found)):
            if i not in found:
                break
            try:
                out.append(read_json(found[i], f"corpus {self.id}"))
            except StoreError as exc:
                raise ActivationError(str(exc)) from None
        return out

    @property
    def n_tokens(self) -> int:
        return sum(int(s["n_tokens"]) for s in self.shards())

    # ---- writing ----
    def write_shard(self, index: int, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> dict[str, Any]:
        """Write shard `index` (arrays: tokens, doc, pos and one [n, width] per site); its JSON record last."""
        from safetensors.numpy import save_file

        name = shard_name(index)
        n = len(arrays["tokens"])
        tensors = {"tokens": arrays["tokens"].astype(np.int32), "doc": arrays["doc"].astype(np.int64),
                   "pos": arrays["pos"].astype(np.int32)}
        for site, width in self.sites.items():
            acts = arrays[site]
            if acts.shape != (n, width):
                raise ActivationError(f"shard {index}: {site} has shape {acts.shape}, expected {(n, width)}")
            tensors[site] = np.ascontiguousarray(acts.astype(np.float16))
            for k, v in unit_stats(tensors[site]).items():
                tensors[f"{k}.{site}"] = v
        path, tmp = self.path / f"{name}.safetensors", self.path / f".{name}.safetensors.tmp"
        with disk_errors(f"shard {index} of corpus {self.id}"):
            save_file(tensors, str(tmp))
            os.chmod(tmp, 0o644)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            record = {"index": index, "file": path.name, "sha256": sha256_file(path), "n_tokens": n, **record}
            write_json_atomic(self.path / f"{name}.json", record)
        return record

    def discard_incomplete(self) -> int:
        """Remove files of shards past the complete ones (an interrupted write); returns how many."""
        done = len(self.shards())
        removed = 0
        for p in list(self.path.iterdir()):
            m = re.match(r"^\.?shard-(\d{5})\.(safetensors|json)(\.tmp)?$", p.name)
            if m and (int(m.group(1)) >= done or m.group(3)):
                p.unlink()
                removed += 1
        return removed

    def update(self, **fields: Any) -> None:
        self.manifest.update(fields)
        with disk_errors(f"corpus {self.id} manifest"):
            write_json_atomic(self.path / MANIFEST, self.manifest)

    # ---- reading ----
    def _check(self, record: dict[str, Any]) -> Path:
        path = self.path / record["file"]
        if not path.is_file():
            raise ActivationError(f"corpus {self.id}: shard {record['index']} ({path.name}) is missing")
        st = path.stat()
        key = (int(record["index"]), st.st_size, st.st_mtime_ns)
        if key not in self._verified:
            if sha256_file(path) != record["sha256"]:
                raise ActivationError(f"corpus {self.id}: shard {record['index']} ({path.name}) is corrupt: it does "
                                      "not match its recorded sha256")
            self._verified.add(key)
        return path

    def read(self, record: dict[str, Any], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of one shard (default: keys and every site); ActivationError if the shard is damaged."""
        from safetensors import safe_open

        path = self._check(record)
        names = list(KEYS) + list(self.sites) if names is None else list(names)
        try:
            with safe_open(str(path), framework="np") as fh:
                return {n: fh.get_tensor(n) for n in names}
        except Exception as exc:  # safetensors raises several types for a damaged header
            raise ActivationError(f"corpus {self.id}: cannot read shard {record['index']} "
                                  f"({type(exc).__name__}: {exc})") from None

    def iter_shards(self, names: Sequence[str] | None = None) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """(record, arrays) for every complete shard, one shard in memory at a time."""
        for record in self.shards():
            yield record, self.read(record, names)

    def unit_stats(self, site: str) -> dict[str, np.ndarray]:
        """min, max, mean, std per unit of `site` over the whole corpus (from the shards' own statistics)."""
        self.require(site)
        acc: dict[str, np.ndarray] = {}
        n = 0
        for record, arr in self.iter_shards([f"{k}.{site}" for k in STATS]):
            n += int(record["n_tokens"])
            for k in STATS:
                v = arr[f"{k}.{site}"].astype(np.float64)
                acc[k] = v if k not in acc else (np.minimum(acc[k], v) if k == "min" else
                                                 np.maximum(acc[k], v) if k == "max" else acc[k] + v)
        if n == 0:
            raise ActivationError(f"corpus {self.id} has no complete shards")
        mean = acc["sum"] / n
        return {"min": acc["min"], "max": acc["max"], "mean": mean,
                "std": np.sqrt(np.maximum(acc["sumsq"] / n - mean ** 2, 0.0)), "n": np.asarray(n)}

    def verify(self) -> list[str]:
        """Problems with the corpus' shards ([] when every one matches its sha256)."""
        problems = []
        for record in self.shards():
            try:
                self._check(record)
            except ActivationError as exc:
                problems.append(str(exc))
        return problems


class ActivationStore:
    """Reads and writes activation corpora under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = settings.activations_dir(root)

    def path(self, corpus_id: str) -> Path:
        return self.root / validate_id(corpus_id, "corpus id", ActivationError)

    def create(self, corpus_id: str, manifest: dict[str, Any]) -> Corpus:
        ensure_root(self.root, "activation root")
        path = self.path(corpus_id)
        if path.exists():
            raise ActivationError(f"corpus {corpus_id} already exists in {self.root}")
        manifest = {"format": FORMAT_VERSION, "id": corpus_id, "status": "collecting", **manifest}
        with disk_errors(f"corpus {corpus_id}"):
            path.mkdir()
            write_json_atomic(path / MANIFEST, manifest)
        return Corpus(path, manifest)

    def open(self, corpus_id: str) -> Corpus:
        path = self.path(corpus_id)
        if not (path / MANIFEST).is_file():
            raise ActivationError(f"no activation corpus {corpus_id} in {self.root}")
        try:
            manifest = read_json(path / MANIFEST, f"corpus {corpus_id}")
        except StoreError as exc:
            raise ActivationError(str(exc)) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("sites"), dict):
            raise ActivationError(f"corpus {corpus_id}: {path / MANIFEST} is not a corpus manifest")
        return Corpus(path, manifest)

    def list(self) -> list[dict[str, Any]]:
        """Manifests of the stored corpora, oldest first (unreadable ones skipped with a warning)."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(".") or not p.is_dir():
                continue
            try:
                out.append(self.open(p.name).manifest)
            except StoreError as exc:
                log.warning("skipped %s: %s", p, exc)
        return sorted(out, key=lambda m: (str(m.get("created", "")), m["id"]))

    def remove(self, corpus_id: str) -> None:
        import shutil

        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.path(corpus_id))


__all__ = ["ActivationError", "ActivationStore", "Corpus", "KEYS", "shard_name", "unit_stats"]
