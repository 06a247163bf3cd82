"""Benchmark data layer: each benchmark is declared once in benchmarks/<name>.yaml.

A declaration says where the files live in a local mirror (the layout of ../shared/benchmark-data),
the hub id online users would load instead, the row schema transform, and the lm-eval tasks built
on it. Reading a split records the sha256 of every file read, so a run manifest can pin its data.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from workbench import settings
from workbench.errors import DataError
from workbench.eval.schemas import SCHEMAS
from workbench.store.publish import sha256_file


@dataclass(frozen=True)
class FileRecord:
    """One data file read for a run: path relative to the mirror, and its sha256."""

    path: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    license: str
    hub: dict[str, str]
    mirror_dir: str
    fmt: str
    schema: str
    splits: dict[str, str]
    columns: tuple[str, ...] | None = None
    subsets: dict[str, str] = field(default_factory=dict)  # subset -> category
    tasks: tuple[dict[str, Any], ...] = ()
    source: str = ""

    def split_path(self, split: str, subset: str | None) -> str:
        return f"{self.mirror_dir}/{self.splits[split].format(subset=subset or '')}"


@lru_cache(maxsize=1)
def _load_declarations(root: str) -> dict[str, Benchmark]:
    out: dict[str, Benchmark] = {}
    for path in sorted(Path(root).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict) or "benchmark" not in raw:
            continue  # e.g. suites.yaml
        mirror = raw["mirror"]
        if mirror["schema"] not in SCHEMAS:
            raise DataError(f"{path}: unknown schema {mirror['schema']!r}; known: {', '.join(SCHEMAS.names())}")
        subsets = raw.get("subsets") or {}
        out[raw["benchmark"]] = Benchmark(
            name=raw["benchmark"],
            title=raw.get("title", raw["benchmark"]),
            license=raw.get("license", ""),
            hub=raw.get("hub", {}),
            mirror_dir=mirror["dir"],
            fmt=mirror["format"],
            schema=mirror["schema"],
            splits=dict(mirror["splits"]),
            columns=tuple(mirror["columns"]) if mirror.get("columns") else None,
            subsets=dict(subsets) if isinstance(subsets, dict) else dict.fromkeys(subsets, ""),
            tasks=tuple(raw.get("tasks", ())),
            source=str(path),
        )
    return out


def benchmarks() -> dict[str, Benchmark]:
    """All declared benchmarks, by name."""
    return _load_declarations(str(settings.benchmarks_dir()))


def _read_raw(path: Path, bench: Benchmark) -> list[tuple[int, dict[str, Any]]]:
    """(line/row number, raw row) pairs from one mirror file."""
    try:
        if bench.fmt == "csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:
                if bench.columns:
                    rows = []
                    for n, rec in enumerate(csv.reader(fh), start=1):
                        if len(rec) != len(bench.columns):
                            raise DataError(
                                f"malformed row in {path} line {n}: expected {len(bench.columns)} "
                                f"columns ({', '.join(bench.columns)}), got {len(rec)}"
                            )
                        rows.append((n, dict(zip(bench.columns, rec))))
                    return rows
                return [(n + 1, r) for n, r in enumerate(csv.DictReader(fh), start=1)]
        if bench.fmt == "jsonl":
            rows = []
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            rows.append((n, json.loads(line)))
                        except json.JSONDecodeError as exc:
                            raise DataError(f"malformed row in {path} line {n}: invalid JSON ({exc.msg})") from None
            return rows
        if bench.fmt == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON array of rows")
            return list(enumerate(data, start=1))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    raise DataError(f"{bench.source}: unknown mirror format {bench.fmt!r}")


def read_split(
    bench: Benchmark, split: str, subset: str | None, data_dir: str | os.PathLike | None = None
) -> tuple[list[dict[str, Any]], FileRecord]:
    """Rows of one split in the hub schema, with the file's record; DataError names what is wrong."""
    root = settings.data_dir(data_dir)
    rel = bench.split_path(split, subset)
    path = root / rel
    if not path.is_file():
        raise DataError(
            f"missing data file for {bench.name}{'/' + subset if subset else ''} ({split} split): {path} "
            f"- set --data-dir or WORKBENCH_DATA_DIR to the benchmark mirror"
        )
    transform = SCHEMAS[bench.schema]
    rows = []
    for n, raw in _read_raw(path, bench):
        try:
            rows.append(transform(raw, subset))
        except (ValueError, TypeError, AttributeError) as exc:
            raise DataError(f"malformed row in {path} line {n}: {exc}") from None
    if not rows:
        raise DataError(f"{path} has no rows")
    return rows, FileRecord(rel, sha256_file(path), len(rows))


_LOADED: dict[tuple, tuple[Any, list[FileRecord]]] = {}


def _stamp(bench: Benchmark, subset: str | None, root: Path) -> tuple:
    """(size, mtime) of every split file: a loaded dataset is reused only while its files are unchanged."""
    out = []
    for split in bench.splits:
        try:
            st = (root / bench.split_path(split, subset)).stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def load_dataset(
    bench: Benchmark, subset: str | None, data_dir: str | os.PathLike | None = None
) -> tuple[Any, list[FileRecord]]:
    """A datasets.DatasetDict of every declared split, read from the mirror (or the hub, if online).
    Loaded once per process while the files are unchanged (MMLU and MMLU-cloze read the same files)."""
    root = settings.data_dir(data_dir)
    key = (bench.name, subset, str(root), _stamp(bench, subset, root))
    if key not in _LOADED:
        if len(_LOADED) >= 512:  # bound the memory of a long-lived process (the dashboard's jobs)
            _LOADED.clear()
        _LOADED[key] = _load_dataset(bench, subset, data_dir)
    return _LOADED[key]


def _load_dataset(bench: Benchmark, subset: str | None, data_dir: str | os.PathLike | None) -> tuple[Any, list[FileRecord]]:
    import datasets

    splits, records = {}, []
    try:
        for split in bench.splits:
            rows, rec = read_split(bench, split, subset, data_dir)
            splits[split] = datasets.Dataset.from_list(rows)
            records.append(rec)
    except DataError:
        if settings.online() and bench.hub.get("path"):
            name = (bench.hub.get("name") or "").format(subset=subset or "") or None
            return datasets.load_dataset(bench.hub["path"], name), [FileRecord(f"hub:{bench.hub['path']}", "", 0)]
        raise
    return datasets.DatasetDict(splits), records
