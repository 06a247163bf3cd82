"""Benchmark data layer: each benchmark is declared once in benchmarks/<name>.yaml.

A declaration says where the files live in a local mirror (the layout of ../shared/benchmark-data),
the hub id online users would load instead, the row schema transform, and the lm-eval tasks built
on it. Reading a split records the sha256 of every file read, so a run manifest can pin its data.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from workbench import settings
from workbench.errors import DataError
from workbench.eval.schemas import SCHEMAS
from workbench.registry import Registry
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
        if mirror["format"] not in READERS:
            raise DataError(f"{path}: unknown mirror format {mirror['format']!r}; known: {', '.join(READERS.names())}")
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


def corpus_benchmark(path: str | os.PathLike) -> Benchmark:
    """A user's text corpus (a file or a folder), read in place as the one split `test` of documents."""
    where = Path(path).expanduser().resolve()
    if not where.exists():
        raise DataError(f"corpus not found: {path}")
    return Benchmark(name=f"corpus:{where}", title=f"text corpus {where}", license="", hub={},
                     mirror_dir=str(where.parent), fmt="corpus", schema="document_text", splits={"test": where.name})


# ---- readers: one per file layout (`mirror.format`) ---------------------------------------------
# A reader turns the file (or folder) a split names into (file, place, raw row) triples - the file and
# place ("line 3") locate the row for error messages - and the list of files read, each pinned by sha256.
Located = list[tuple[Path, str, dict[str, Any]]]
Reader = Callable[[Path, Benchmark], tuple[Located, list[Path]]]
READERS: Registry[Reader] = Registry("mirror format", error=DataError)


def reader(name: str) -> Callable[[Reader], Reader]:
    return READERS.register(name)


@reader("csv")
def _read_csv(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """A CSV with a header row, or headerless with the declaration's `columns`.

    Strict quoting, and every record must have one field per column: a quote left open would otherwise
    swallow the lines up to the next quote character into one field and merge rows silently.
    """
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rdr, start = csv.reader(fh, strict=True), 1
        try:
            columns = list(bench.columns) if bench.columns else next(rdr, None)
            if not columns:
                return [], [path]
            rows: Located = []
            start = rdr.line_num + 1
            for rec in rdr:
                if rec and len(rec) != len(columns):
                    raise DataError(f"malformed row in {path} line {start}: expected {len(columns)} columns "
                                    f"({', '.join(columns)}), got {len(rec)}")
                if rec:
                    rows.append((path, f"line {start}", dict(zip(columns, rec))))
                start = rdr.line_num + 1
        except csv.Error as exc:
            at = "" if rdr.line_num == start else f", broken at line {rdr.line_num}"
            raise DataError(f"malformed CSV in {path}: the record starting at line {start}{at}: {exc} "
                            "(an unclosed or stray quote?)") from None
    return rows, [path]


def _jsonl(path: Path) -> Located:
    rows = []
    with open(path, encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append((path, f"line {n}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"malformed row in {path} line {n}: invalid JSON ({exc.msg})") from None
    return rows


@reader("jsonl")
def _read_jsonl(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """One JSON object per line."""
    return _jsonl(path), [path]


@reader("json")
def _read_json(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """A JSON array of rows."""
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of rows")
    return [(path, f"line {n}", r) for n, r in enumerate(data, start=1)], [path]


# BIG-bench's task.json fields that shape every example's text (bigbench.api.json_task).
_BIGBENCH_FORMAT_KEYS = ("task_prefix", "example_input_prefix", "example_output_prefix", "choice_prefix",
                         "append_choices_to_input", "metrics")


@reader("bigbench_task")
def _read_bigbench(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """A BIG-bench JSON task: its examples, or (a task with subtasks) those of every `*/task.json` below it,
    in the order BIG-bench's JsonTask reads them (subtask paths sorted), duplicate examples dropped as
    JsonTask drops them. Each raw row carries the example, its (sub)task's formatting fields and its index."""
    task = _json_object(path)
    sources = [path]
    if "examples" not in task:
        sources = sorted(p / "task.json" for p in path.parent.iterdir() if (p / "task.json").is_file())
        if not sources:
            raise DataError(f"{path} has neither examples nor subtask folders with a task.json")
    rows: Located = []
    for file in sources:
        data = task if file == path else _json_object(file)
        examples = data.get("examples")
        if not isinstance(examples, list):
            raise DataError(f"{file}: 'examples' must be a list of example objects")
        fields = {k: data[k] for k in _BIGBENCH_FORMAT_KEYS if k in data}
        subtask = None if file == path else str(data.get("name") or file.parent.name)
        seen: set[str] = set()
        for n, ex in enumerate(examples, start=1):
            key = json.dumps(ex)
            if key in seen:
                continue
            seen.add(key)
            rows.append((file, f"example {n}", {"example": ex, "task": fields, "idx": len(seen) - 1,
                                                  "subtask": subtask}))
    return rows, list(dict.fromkeys([path, *sources]))


def _json_object(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


# ---- text corpora (perplexity) ---------------------------------------------------------------------
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _text_document(path: Path) -> str:
    """A whole file as one document; DataError if it is binary or empty."""
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise DataError(f"{path} is a binary file, not text (it contains NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text


@reader("corpus")
def _read_corpus(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """Documents for perplexity: a text file is one document, a JSONL file one document per line (its
    `text` field), a folder every non-hidden file below it (sorted). Binary files are refused."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"corpus folder {path} holds no files")
    else:
        files = [path]
    rows: Located = []
    for file in files:
        if file.suffix.lower() in _JSONL_SUFFIXES:
            _text_document(file)  # binary check
            rows.extend(_jsonl(file))
        else:
            rows.append((file, "", {"text": _text_document(file)}))
    return rows, files


def _read_raw(path: Path, bench: Benchmark) -> tuple[Located, list[Path]]:
    """(file, place, raw row) triples from one split's file(s), and the files read."""
    read = READERS.get(bench.fmt)
    try:
        return read(path, bench)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _embedded_row(raw: dict[str, Any], columns: tuple[str, ...], transform: Any, subset: str | None) -> str | None:
    """A line inside a multi-line field that is itself a valid row, or None.

    In a headerless CSV a quote left open upstream can merge whole rows into one field and still leave
    the right number of columns; the merged row shows as a field holding a complete row of its own.
    (Checked on the real MMLU mirror: no multi-line question holds such a line.)
    """
    for value in raw.values():
        if not isinstance(value, str) or "\n" not in value:
            continue
        for line in value.split("\n"):
            fields = next(csv.reader([line]), [])
            if len(fields) != len(columns):
                continue
            try:
                transform(dict(zip(columns, fields)), subset)
            except (ValueError, TypeError, AttributeError, KeyError):
                continue
            return line
    return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:  # a corpus outside the mirror is recorded by its absolute path
        return str(path)


def read_split(
    bench: Benchmark, split: str, subset: str | None, data_dir: str | os.PathLike | None = None
) -> tuple[list[dict[str, Any]], list[FileRecord]]:
    """Rows of one split in the hub schema, with a record per file read; DataError names what is wrong."""
    root = settings.data_dir(data_dir)
    rel = bench.split_path(split, subset)
    path = root / rel
    what = f"{bench.name}{'/' + subset if subset else ''} ({split} split)"
    if not path.exists():
        raise DataError(f"missing data file for {what}: {path} - set --data-dir or WORKBENCH_DATA_DIR to the "
                        "benchmark mirror")
    if not path.is_file() and bench.fmt != "corpus":  # only a corpus may be a folder
        raise DataError(f"data file for {what} is not a file: {path}")
    transform = SCHEMAS[bench.schema]
    located, files = _read_raw(path, bench)
    check_merged = bench.fmt == "csv" and bool(bench.columns)
    rows = []
    counts = dict.fromkeys(files, 0)
    for file, place, raw in located:
        where = " ".join(filter(None, (str(file), place)))
        try:
            rows.append(transform(raw, subset))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise DataError(f"malformed row in {where}: {exc}") from None
        merged = _embedded_row(raw, bench.columns, transform, subset) if check_merged else None
        if merged is not None:
            raise DataError(f"malformed row in {where}: a field spans several lines and one of them is a "
                            f"complete row ({merged[:50]!r}...); an unclosed quote merged rows")
        counts[file] += 1
    if not rows:
        raise DataError(f"{path} has no rows")
    try:
        return rows, [FileRecord(_relative(f, root), sha256_file(f), counts[f]) for f in files]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


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


@lru_cache(maxsize=1)
def _rows_class() -> type:
    """datasets.Dataset whose plain iteration converts all rows at once (lm-eval lists every few-shot
    split when it builds a task: row by row that was 11 of the 20 s spent planning the quick suite)."""
    import datasets

    class Rows(datasets.Dataset):
        def __iter__(self):
            if self._format_type is not None:
                yield from super().__iter__()
                return
            for batch in self.iter(batch_size=4096):  # a dict of columns, decoded as rows would be
                keys = list(batch)
                for values in zip(*(batch[k] for k in keys), strict=True):
                    yield dict(zip(keys, values, strict=True))

    return Rows


def _load_dataset(bench: Benchmark, subset: str | None, data_dir: str | os.PathLike | None) -> tuple[Any, list[FileRecord]]:
    import datasets

    splits, records = {}, []
    try:
        for split in bench.splits:
            rows, recs = read_split(bench, split, subset, data_dir)
            splits[split] = _rows_class().from_list(rows)
            records.extend(recs)
    except DataError:
        if settings.online() and bench.hub.get("path"):
            name = (bench.hub.get("name") or "").format(subset=subset or "") or None
            return datasets.load_dataset(bench.hub["path"], name), [FileRecord(f"hub:{bench.hub['path']}", "", 0)]
        raise
    return datasets.DatasetDict(splits), records
