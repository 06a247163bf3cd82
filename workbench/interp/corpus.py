"""Text for activation corpora: real benchmark text from the mirror, or the user's own files.

The default corpus (`mirror`) interleaves six sources, each one round-robin over its files so a small
token budget still covers every subject and task: MMLU questions with their choices, ARC questions
with choices, TruthfulQA questions with each of their answers, GSM8K questions with their worked
solutions, HumanEval prompts with the canonical code, and BIG-bench inputs. Documents are
deduplicated on their whitespace-normalised text, and each carries a reference (file relative to the
mirror and row) so every shard can name its provenance. A fixed 1 in 20 of the documents (chosen by
a hash of the text, so independent of the budget) is held out: collection reads the `train` side,
SAE evaluation the `heldout` side.

Memory: a source holds the texts of the files it is reading (tens of MB for the whole mirror),
never activations.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workbench import settings
from workbench.errors import DataError
from workbench.interp.errors import InterpError
from workbench.registry import Registry
from workbench.store.publish import sha256_file

HELDOUT_EVERY = 20
SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class Document:
    text: str
    source: str      # the source's name (mmlu, arc, ..., or "file")
    file: str        # path relative to the corpus root
    row: str         # row (and part) within the file

    @property
    def ref(self) -> str:
        return f"{self.file}#{self.row}"


@dataclass
class TextCorpus:
    """A stream of documents and the sha256 of every file it has opened so far."""

    name: str
    root: Path
    make: Callable[[TextCorpus], Iterator[Document]]
    files: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)   # mirror files a source expected but did not find

    def file_sha(self, rel: str) -> str:
        if rel not in self.files:
            self.files[rel] = sha256_file(self.root / rel)
        return self.files[rel]

    def documents(self, split: str = "train") -> Iterator[Document]:
        """Deduplicated documents of one split, in a fixed order."""
        if split not in SPLITS:
            raise InterpError(f"unknown corpus split {split!r}; use one of {', '.join(SPLITS)}")
        seen: set[bytes] = set()
        for doc in self.make(self):
            digest = hashlib.blake2b(" ".join(doc.text.split()).encode(), digest_size=16).digest()
            if digest in seen or not doc.text.strip():
                continue
            seen.add(digest)
            heldout = int.from_bytes(digest[:4], "little") % HELDOUT_EVERY == 0
            if split == "all" or heldout == (split == "heldout"):
                yield doc


def interleave(streams: Iterable[Iterator[Document]]) -> Iterator[Document]:
    """Round-robin over iterators until all are exhausted."""
    live = list(streams)
    while live:
        nxt = []
        for it in live:
            try:
                yield next(it)
            except StopIteration:
                continue
            nxt.append(it)
        live = nxt


# ---- mirror sources ---------------------------------------------------------------------------------
Source = Callable[[TextCorpus], Iterator[Document]]
SOURCES: Registry[Source] = Registry("mirror text source", error=InterpError)


def register_source(name: str) -> Callable[[Source], Source]:
    return SOURCES.register(name)


def _split_rows(corpus: TextCorpus, bench_name: str, split: str, subset: str | None):
    """Rows of one split in the hub schema; a file the mirror lacks is recorded in `missing` and skipped."""
    from workbench.eval.data import benchmarks, read_split

    bench = benchmarks()[bench_name]
    rel = bench.split_path(split, subset)
    if not (corpus.root / rel).is_file():
        corpus.missing.append(rel)
        return [], rel
    rows, recs = read_split(bench, split, subset, corpus.root)
    corpus.files.update({rec.path: rec.sha256 for rec in recs})
    return rows, recs[0].path


def _lettered(question: str, choices: list[str], labels: list[str] | None = None) -> str:
    labels = labels or [chr(65 + i) for i in range(len(choices))]
    return question.strip() + "\n" + "\n".join(f"{l}. {c}" for l, c in zip(labels, choices))


@register_source("mmlu")
def _mmlu(corpus: TextCorpus) -> Iterator[Document]:
    """Test questions with their four lettered choices, round-robin over the 57 subjects."""
    from workbench.eval.data import benchmarks

    def subject(s: str) -> Iterator[Document]:
        rows, rel = _split_rows(corpus, "mmlu", "test", s)
        for i, r in enumerate(rows):
            yield Document(_lettered(r["question"], r["choices"]), "mmlu", rel, str(i))

    return interleave(subject(s) for s in benchmarks()["mmlu"].subsets)


@register_source("arc")
def _arc(corpus: TextCorpus) -> Iterator[Document]:
    """ARC-Easy and ARC-Challenge questions with their choices (train, dev and test files)."""

    def part(subset: str, split: str) -> Iterator[Document]:
        rows, rel = _split_rows(corpus, "arc", split, subset)
        for i, r in enumerate(rows):
            yield Document(_lettered(r["question"], r["choices"]["text"], r["choices"]["label"]), "arc", rel, str(i))

    return interleave(part(s, sp) for s in ("ARC-Easy", "ARC-Challenge") for sp in ("train", "validation", "test"))


@register_source("truthfulqa")
def _truthfulqa(corpus: TextCorpus) -> Iterator[Document]:
    """Each TruthfulQA question with each of its (true and false) MC2 answers."""
    rows, rel = _split_rows(corpus, "truthfulqa_mc", "validation", None)
    for i, r in enumerate(rows):
        for j, answer in enumerate(r["mc2_targets"]["choices"]):
            yield Document(f"Q: {r['question'].strip()}\nA: {answer.strip()}", "truthfulqa", rel, f"{i}.{j}")


@register_source("gsm8k")
def _gsm8k(corpus: TextCorpus) -> Iterator[Document]:
    """GSM8K questions with their worked solutions (train and test)."""

    def part(split: str) -> Iterator[Document]:
        rows, rel = _split_rows(corpus, "gsm8k", split, None)
        for i, r in enumerate(rows):
            yield Document(f"{r['question'].strip()}\n{r['answer'].strip()}", "gsm8k", rel, str(i))

    return interleave(part(s) for s in ("train", "test"))


@register_source("humaneval")
def _humaneval(corpus: TextCorpus) -> Iterator[Document]:
    """HumanEval prompts with the canonical solution (Python code)."""
    rows, rel = _split_rows(corpus, "humaneval", "test", None)
    for i, r in enumerate(rows):
        yield Document(r["prompt"] + r["canonical_solution"], "humaneval", rel, str(i))


@register_source("bigbench")
def _bigbench(corpus: TextCorpus) -> Iterator[Document]:
    """The `input` of every example of the BIG-bench JSON tasks, round-robin over the task files."""
    files = sorted((corpus.root / "bigbench").rglob("task.json"))
    if not files:
        corpus.missing.append("bigbench/**/task.json")

    def task(path: Path) -> Iterator[Document]:
        rel = str(path.relative_to(corpus.root))
        corpus.file_sha(rel)
        try:
            examples = json.loads(path.read_text(encoding="utf-8")).get("examples") or []
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        for i, ex in enumerate(examples):
            if isinstance(ex, dict) and isinstance(ex.get("input"), str):
                yield Document(ex["input"], "bigbench", rel, str(i))

    return interleave(task(p) for p in files)


def _mirror(corpus: TextCorpus) -> Iterator[Document]:
    return interleave(SOURCES.get(name)(corpus) for name in MIRROR_SOURCES)


MIRROR_SOURCES = ("mmlu", "arc", "truthfulqa", "gsm8k", "humaneval", "bigbench")


# ---- user files -------------------------------------------------------------------------------------
TEXT_SUFFIXES = (".txt", ".md", ".jsonl", ".json")


def _file_docs(corpus: TextCorpus, path: Path) -> Iterator[Document]:
    """Documents of one file: blank-line separated paragraphs (.txt/.md), `text` (or the first string
    field) of each JSONL line, or the strings / `text` fields of a JSON list."""
    rel = str(path.relative_to(corpus.root)) if path != corpus.root else path.name
    corpus.files[rel] = sha256_file(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read corpus file {path}: {exc}") from None

    def text_of(obj: object) -> str | None:
        if isinstance(obj, str):
            return obj
        if isinstance(obj, dict):
            if isinstance(obj.get("text"), str):
                return obj["text"]
            return next((v for v in obj.values() if isinstance(v, str)), None)
        return None

    if path.suffix == ".jsonl":
        for n, line in enumerate(raw.splitlines(), start=1):
            if line.strip():
                try:
                    text = text_of(json.loads(line))
                except ValueError:
                    raise DataError(f"malformed JSON in {path} line {n}") from None
                if text:
                    yield Document(text, "file", rel, str(n))
    elif path.suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise DataError(f"{path} is not valid JSON ({exc})") from None
        for i, obj in enumerate(data if isinstance(data, list) else [data]):
            text = text_of(obj)
            if text:
                yield Document(text, "file", rel, str(i))
    else:
        for i, para in enumerate(p for p in raw.split("\n\n") if p.strip()):
            yield Document(para.strip(), "file", rel, str(i))


def text_corpus(spec: str = "mirror", data_dir: str | os.PathLike | None = None) -> TextCorpus:
    """`mirror` (the benchmark mirror), or a text/JSONL/JSON file or a directory of them."""
    if spec == "mirror":
        root = settings.data_dir(data_dir)
        if not root.is_dir():
            raise DataError(f"benchmark mirror not found at {root}; set --data-dir or WORKBENCH_DATA_DIR")
        return TextCorpus("mirror", root, _mirror)
    path = Path(spec).expanduser().resolve()
    if path.is_file():
        return TextCorpus(str(path), path.parent, lambda c: _file_docs(c, path))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise InterpError(f"corpus directory {path} has no {'/'.join(TEXT_SUFFIXES)} files")
        return TextCorpus(str(path), path, lambda c: (d for f in files for d in _file_docs(c, f)))
    raise InterpError(f"corpus {spec!r} is neither `mirror` nor an existing file or directory")


__all__ = ["Document", "MIRROR_SOURCES", "SOURCES", "TextCorpus", "interleave", "register_source", "text_corpus"]
