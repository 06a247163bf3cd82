"""Benchmark contamination: n-gram overlap of benchmark items with a corpus, and Min-K% Prob membership.

N-gram overlap is lm-eval's decontamination (`lm_eval.decontamination`): an item's text is the task's
own `doc_to_decontamination_query` when its config declares one (lm-eval's choice of what to check),
else its zero-shot `doc_to_text`; it is normalised by lm-eval's `Janitor` (ASCII lowercased,
`string.punctuation` deleted), split on whitespace and cut into word n-grams (`janitor.word_ngrams`,
13 by default). The corpus gets the same normalisation. An item is contaminated when any of its
n-grams occurs in the corpus (lm-eval's and GPT-3's rule), or with `min_overlap` R when at least a
share R of them do; an item with fewer than n words has no n-grams and is not tested (as in lm-eval).
With `ignore_shared` K, n-grams that more than K documents of the benchmark itself contain (templates,
shared passages) are left out of every item, so boilerplate does not flag every item that carries it.

The corpus (text, JSONL or Parquet files, or directories of them) is streamed in blocks: memory is
bounded by the items' n-grams and one block, whatever the corpus size. Corpus n-grams are matched by a
64-bit rolling hash of their words and every hash hit is confirmed on the n-gram's text, so a match is
exact. Nothing is written until the whole corpus is read: the result is published in one rename.

Min-K% Prob (Shi et al., 2024, "Detecting Pretraining Data from Large Language Models"): the mean of
the lowest k% (default 20%) token log-probabilities of the item text under a model, scored as lm-eval's
`loglikelihood_rolling` scores a document (rolling windows, the first token after the model's prefix
token). Higher means the model finds even its least likely tokens likely: evidence that it saw the text.
With membership labels, its AUROC (and the n-gram flag's precision and recall) are reported.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import settings
from workbench.analysis import stats
from workbench.errors import DataError, WorkbenchError
from workbench.store.contamination import ContaminationResult, ContaminationStore
from workbench.store.provenance import package_versions, utc_now
from workbench.store.publish import sha256_file

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".text", ".md")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", **dict.fromkeys(TEXT_SUFFIXES, "text")}
NORMALISATION = ("lm_eval.decontamination.janitor: Janitor.normalize_string (ASCII lowercase, string.punctuation "
                 "deleted), whitespace split, janitor.word_ngrams")
_BLOCK_BYTES = 1 << 22          # bytes read at a time from a text or JSONL file
_FLUSH_WORDS = 1 << 20          # corpus words hashed and matched at a time
_SEPARATOR = " "                # never a word after str.split(): n-grams across documents cannot match
_GIANT_WORD = 4 * _BLOCK_BYTES  # characters without whitespace after which a "word" cannot be a benchmark word
_PLACEHOLDER = "\x00"           # stands for such a word (corpus files with NUL bytes are refused as binary)
_PRIME = np.uint64(0x100000001B3)


class CorpusError(DataError):
    """A corpus path that is missing, binary, empty or malformed."""


@dataclass(frozen=True)
class Item:
    """One benchmark item, keyed as in the run store."""

    task: str
    doc_id: int
    prompt_hash: str
    text: str


@dataclass
class ContaminationRequest:
    """What `workbench contamination` was asked to do; recorded in the result's manifest."""

    corpus: list[str]
    tasks: list[str] = field(default_factory=list)
    suite: str | None = None
    run: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    seed: int = 1234
    data_dir: str | None = None
    ngram: int = 13
    min_overlap: float = 0.0
    ignore_shared: int | None = None
    text_field: str = "text"
    model: str | None = None
    mink_k: float = 0.2
    labels: str | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not self.corpus:
            raise CorpusError("give the corpus to scan: --corpus PATH (a file or a directory)")
        if sum(bool(x) for x in (self.tasks, self.suite, self.run)) != 1:
            raise WorkbenchError("give exactly one of --tasks, --suite or --run to choose the benchmark items")
        if not isinstance(self.ngram, int) or self.ngram < 1:
            raise WorkbenchError(f"--ngram must be an integer >= 1, got {self.ngram!r}")
        if self.ignore_shared is not None and (not isinstance(self.ignore_shared, int) or self.ignore_shared < 1):
            raise WorkbenchError(f"--ignore-shared must be an integer >= 1, got {self.ignore_shared!r}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise WorkbenchError(f"--min-overlap must be in [0, 1], got {self.min_overlap}")
        if not 0.0 < self.mink_k <= 1.0:
            raise WorkbenchError(f"--mink-k must be in (0, 1], got {self.mink_k}")


# ---- lm-eval's normalisation ----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _janitor_module():
    # janitor.py prints a warning and a traceback at import when its optional C++ helper is absent;
    # the pure-Python functions used here are the reference ones either way.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lm_eval.decontamination import janitor
    return janitor


@functools.lru_cache(maxsize=1)
def normalizer():
    """lm-eval's Janitor normalisation (a str -> str function)."""
    return _janitor_module().Janitor().normalize_string


def item_ngrams(text: str, n: int) -> set[str]:
    """The item's distinct word n-grams after lm-eval's normalisation (exactly janitor.word_ngrams)."""
    jan = _janitor_module()
    return set(jan.word_ngrams(normalizer()(text), n))


def _token_hashes(words: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


def window_hashes(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """Rolling polynomial hash of every window of n consecutive tokens (uint64 arithmetic wraps)."""
    count = len(token_hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = token_hashes[:count].copy()
    for j in range(1, n):
        h = h * _PRIME + token_hashes[j:j + count]
    return h


class NgramIndex:
    """The items' n-grams, and which of them the corpus has shown so far."""

    def __init__(self, texts: Sequence[str], n: int, ignore: set[str] | frozenset[str] = frozenset()) -> None:
        self.n = n
        self.normalize = normalizer()
        self.grams: dict[str, int] = {}
        self.item_grams: list[np.ndarray] = []
        self.item_words: list[int] = []
        for text in texts:
            norm = self.normalize(text)
            self.item_words.append(len(norm.split()))
            ids = {self.grams.setdefault(g, len(self.grams)) for g in _janitor_module().word_ngrams(norm, n)
                   if g not in ignore}
            self.item_grams.append(np.array(sorted(ids), dtype=np.int64))
        self.found = np.zeros(len(self.grams), dtype=bool)
        if self.grams:
            words = [w for g in self.grams for w in g.split(" ")]
            tokens = _token_hashes(words).reshape(len(self.grams), n)
            h = tokens[:, 0].copy()
            for j in range(1, n):
                h = h * _PRIME + tokens[:, j]
        else:
            h = np.zeros(0, dtype=np.uint64)
        order = np.argsort(h, kind="stable")
        self.keys = h[order]

    def scan(self, words: Sequence[str]) -> int:
        """Mark the items' n-grams that occur in `words`; returns how many windows matched."""
        if not len(self.keys) or len(words) < self.n:
            return 0
        h = window_hashes(_token_hashes(words), self.n)
        pos = np.minimum(np.searchsorted(self.keys, h), len(self.keys) - 1)
        matched = 0
        for i in np.flatnonzero(self.keys[pos] == h):
            gid = self.grams.get(" ".join(words[i:i + self.n]))
            if gid is not None:  # a hash collision otherwise
                self.found[gid] = True
                matched += 1
        return matched

    def item_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item: its distinct n-grams, and how many of them the corpus holds."""
        total = np.array([len(g) for g in self.item_grams], dtype=np.int64)
        hit = np.array([int(self.found[g].sum()) for g in self.item_grams], dtype=np.int64)
        return total, hit


# ---- the corpus -----------------------------------------------------------------------------------
@dataclass
class CorpusFile:
    path: Path
    format: str                     # text | jsonl | parquet
    bytes: int = 0
    sha256: str = ""
    documents: int = 0
    words: int = 0

    def record(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def corpus_files(paths: Sequence[str | Path]) -> list[CorpusFile]:
    """The files to scan: each path a file (format by suffix; unknown suffixes are read as text) or a
    directory (its .txt/.text/.md/.jsonl/.ndjson/.parquet files, recursively, in name order)."""
    out: list[CorpusFile] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise CorpusError(f"corpus path {path} does not exist")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise CorpusError(f"corpus directory {path} holds no {', '.join(sorted(FORMATS))} files")
            out += [CorpusFile(p, FORMATS[p.suffix.lower()]) for p in found]
        elif path.is_file():
            out.append(CorpusFile(path, FORMATS.get(path.suffix.lower(), "text")))
        else:
            raise CorpusError(f"corpus path {path} is not a regular file or directory")
    return out


def _binary_error(cf: CorpusFile, why: str) -> CorpusError:
    return CorpusError(f"corpus file {cf.path} is not UTF-8 text ({why}); binary files cannot be scanned")


def check_file(cf: CorpusFile, text_field: str) -> None:
    """Fail fast, before any scanning, on an empty, binary or wrongly shaped corpus file."""
    try:
        size = cf.path.stat().st_size
        if size == 0:
            raise CorpusError(f"corpus file {cf.path} is empty")
        if cf.format == "parquet":
            _parquet_file(cf, text_field)
            return
        with open(cf.path, "rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {cf.path}: {exc.strerror or exc}") from None
    if b"\x00" in head:
        raise _binary_error(cf, "it contains NUL bytes")
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise _binary_error(cf, f"invalid UTF-8 at byte {exc.start}") from None


def _blocks(cf: CorpusFile) -> Iterator[str]:
    """The file decoded block by block (strict UTF-8), its size and sha256 recorded as it is read."""
    import hashlib

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    sha, offset = hashlib.sha256(), 0
    try:
        with open(cf.path, "rb") as fh:
            while block := fh.read(_BLOCK_BYTES):
                sha.update(block)
                if b"\x00" in block:
                    raise _binary_error(cf, f"NUL bytes after byte {offset}")
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as exc:
                    raise _binary_error(cf, f"invalid UTF-8 at byte {offset + exc.start}") from None
                offset += len(block)
                yield text
            try:
                text = decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise _binary_error(cf, "it ends inside a multi-byte character") from None
            yield text
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {cf.path}: {exc.strerror or exc}") from None
    cf.bytes, cf.sha256 = offset, sha.hexdigest()


def _text_documents(cf: CorpusFile) -> Iterator[tuple[str, bool]]:
    """A text file is one document, yielded in pieces cut at whitespace (so no word is split). A run of
    text with no whitespace longer than a few blocks is one giant word, which no benchmark n-gram can
    contain: it is replaced by one placeholder word, so memory stays bounded."""
    carry, first, giant = "", True, False
    for block in _blocks(cf):
        text = carry + block
        cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"), text.rfind("\r"))
        if cut < 0:
            carry = text
            if len(carry) > _GIANT_WORD:
                carry, giant = "", True
            continue
        if giant:  # the giant word ends at the first whitespace of this text
            start = min(i for i in (text.find(" "), text.find("\n"), text.find("\t"), text.find("\r")) if i >= 0)
            text, cut, giant = _PLACEHOLDER + text[start:], cut - start + len(_PLACEHOLDER), False
        carry = text[cut + 1:]
        yield text[:cut + 1], first
        first = False
    if giant:
        carry = _PLACEHOLDER
    if carry:
        yield carry, first


def _document_text(record: Any, text_field: str, where: str) -> str:
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        raise CorpusError(f"{where}: no string field {text_field!r} (set --text-field)")
    text = record[text_field]
    if not text.strip():
        raise CorpusError(f"{where}: empty document (field {text_field!r} holds no text)")
    return text


def _jsonl_documents(cf: CorpusFile, text_field: str) -> Iterator[tuple[str, bool]]:
    carry, line_no = "", 0
    for block in _blocks(cf):
        lines = (carry + block).split("\n")
        carry = lines.pop()
        for line in lines:
            line_no += 1
            if line.strip():
                yield _parse_line(cf, line, line_no, text_field), True
    if carry.strip():
        yield _parse_line(cf, carry, line_no + 1, text_field), True


def _parse_line(cf: CorpusFile, line: str, line_no: int, text_field: str) -> str:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise CorpusError(f"{cf.path} line {line_no} is not JSON ({exc.msg})") from None
    return _document_text(record, text_field, f"{cf.path} line {line_no}")


def _parquet_file(cf: CorpusFile, text_field: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(cf.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"corpus file {cf.path} is not a readable Parquet file ({exc})") from None
    schema = pf.schema_arrow
    if text_field not in schema.names or not (pa.types.is_string(schema.field(text_field).type)
                                              or pa.types.is_large_string(schema.field(text_field).type)):
        raise CorpusError(f"{cf.path}: no string column {text_field!r} (columns: {', '.join(schema.names)}; "
                          "set --text-field)")
    return pf


def _parquet_documents(cf: CorpusFile, text_field: str) -> Iterator[tuple[str, bool]]:
    import pyarrow as pa

    pf = _parquet_file(cf, text_field)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024, columns=[text_field]):
            for value in batch.column(0).to_pylist():
                row += 1
                yield _document_text({text_field: value}, text_field, f"{cf.path} row {row}"), True
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(f"cannot read corpus file {cf.path} after row {row}: {exc}") from None
    cf.bytes, cf.sha256 = cf.path.stat().st_size, sha256_file(cf.path)


def documents(cf: CorpusFile, text_field: str = "text") -> Iterator[tuple[str, bool]]:
    """(text, starts a new document) pieces of one corpus file."""
    if cf.format == "parquet":
        return _parquet_documents(cf, text_field)
    if cf.format == "jsonl":
        return _jsonl_documents(cf, text_field)
    return _text_documents(cf)


def scan_corpus(index: NgramIndex, files: Sequence[CorpusFile], text_field: str = "text",
                progress: bool = False) -> dict[str, Any]:
    """Stream every file through the index; returns corpus statistics (files get sizes and digests)."""
    from tqdm import tqdm

    for cf in files:
        check_file(cf, text_field)
    total = sum(cf.path.stat().st_size for cf in files)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="scan corpus", disable=not progress, dynamic_ncols=True)
    buf: list[str] = []
    keep = max(index.n - 1, 0)
    matched = 0
    t0 = time.perf_counter()
    for cf in files:
        for text, new_doc in documents(cf, text_field):
            words = index.normalize(text).split()
            if new_doc:
                cf.documents += 1
                if buf:
                    buf.append(_SEPARATOR)
            cf.words += len(words)
            buf.extend(words)
            if len(buf) >= _FLUSH_WORDS:
                matched += index.scan(buf)
                buf = buf[len(buf) - keep:] if keep else []
        if cf.words == 0:
            raise CorpusError(f"corpus file {cf.path} holds no words (an empty document)")
        if buf:  # the file's last words: n-grams do not run on into the next file
            matched += index.scan(buf)
            buf = []
        bar.update(cf.path.stat().st_size)
    bar.close()
    seconds = time.perf_counter() - t0
    words = sum(cf.words for cf in files)
    return {"files": [cf.record() for cf in files], "documents": sum(cf.documents for cf in files), "words": words,
            "bytes": sum(cf.bytes for cf in files), "matched_windows": matched, "scan_s": round(seconds, 3),
            "words_per_s": round(words / seconds, 1) if seconds > 0 else None}


# ---- the items ------------------------------------------------------------------------------------
def item_text(task: Any, doc: dict[str, Any]) -> tuple[str, str]:
    """(text to check, where it came from): lm-eval's decontamination query if the task declares one,
    else the zero-shot doc_to_text."""
    if task.should_decontaminate():
        query = task.config.doc_to_decontamination_query
        try:
            text = task.doc_to_decontamination_query(doc)
        except (ValueError, SyntaxError):
            # lm-eval literal_evals a rendered template, which fails on plain text (ARC's "Question: ...")
            from lm_eval.utils import apply_template

            text = apply_template(query, doc)
        return str(text), "doc_to_decontamination_query"
    text = task.doc_to_text(doc)
    if isinstance(text, int):  # a multiple-input task: the text is one of the choices
        text = task.doc_to_choice(doc)[text]
    return str(text), "doc_to_text"


def _items_from_tasks(req: ContaminationRequest, lm: Any) -> tuple[list[Item], dict[str, Any], list[Any]]:
    from workbench.eval.harness import EvalRequest, build_requests, plan_tasks, prompt_hash, prompt_text

    ereq = EvalRequest(model=req.model or "-", tasks=list(req.tasks), suite=req.suite, limit=req.limit,
                       num_fewshot=req.num_fewshot, data_dir=req.data_dir, seed=req.seed)
    items: list[Item] = []
    meta: dict[str, Any] = {}
    planned = plan_tasks(ereq)
    for built, ids in planned:
        by_pos = build_requests(built, ids, lm)
        sources = set()
        for pos, doc_id in enumerate(ids):
            inst = by_pos[pos][0]
            text, source = item_text(built.task, inst.doc)
            sources.add(source)
            items.append(Item(built.spec.name, int(doc_id), prompt_hash(prompt_text(inst)), text))
        meta[built.spec.name] = {"version": built.version, "prompt_hash": built.prompt_hash,
                                 "num_fewshot": built.num_fewshot, "text": sorted(sources), "n_items": len(ids)}
    return items, meta, [built for built, _ in planned]


def _items_from_run(req: ContaminationRequest, store: ContaminationStore) -> tuple[list[Item], dict[str, Any], list[Any]]:
    """The items of a stored run, with its own prompt hashes (so the result joins the run exactly)."""
    from workbench.eval import tasks as T
    from workbench.store import RunStore

    run = RunStore(store.store_root).load(str(req.run))
    samples = run.samples
    recorded = run.manifest.get("request") or {}
    items: list[Item] = []
    meta: dict[str, Any] = {}
    builts = []
    for task, part in samples.groupby("task", sort=False):
        spec = T.resolve([str(task)])[0]
        built = T.build(spec, req.data_dir or recorded.get("data_dir"), recorded.get("num_fewshot"),
                        fewshot_seed=int(recorded.get("seed", 1234)))
        builts.append(built)
        docs = built.task.eval_docs
        sources = set()
        for doc_id, phash in zip(part["doc_id"], part["prompt_hash"]):
            text, source = item_text(built.task, docs[int(doc_id)])
            sources.add(source)
            items.append(Item(str(task), int(doc_id), str(phash), text))
        meta[str(task)] = {"version": built.version, "prompt_hash": built.prompt_hash, "text": sorted(sources),
                           "n_items": len(part), "run": run.run_id}
    return items, meta, builts


def shared_ngrams(builts: Sequence[Any], n: int, more_than: int) -> set[str]:
    """N-grams found in more than `more_than` documents of the benchmark itself (all eval docs of the
    tasks, not only those scanned): instructions, templates and shared passages rather than item
    content (MMLU's moral-scenarios preamble is in 895 items, its "Statement 1 | ..." template in two
    subjects). Matching them flags every item that carries them."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for built in builts:
        for doc in built.task.eval_docs:
            counts.update(item_ngrams(item_text(built.task, doc)[0], n))
    return {g for g, c in counts.items() if c > more_than}


# ---- Min-K% Prob ----------------------------------------------------------------------------------
def torch_model(lm: Any) -> Any:
    """The backend's torch model, or a clear error for backends that do not expose one (llama.cpp, openai)."""
    import torch

    model = getattr(lm, "model", None)
    if not isinstance(model, torch.nn.Module) or not callable(getattr(lm, "tok_encode", None)):
        backend = getattr(getattr(lm, "info", None), "backend", type(lm).__name__)
        raise WorkbenchError(f"Min-K% Prob needs per-token log-probabilities; the {backend} backend does not expose "
                             "its model (use an hf:, gguf: or int8: model, or an alias)")
    return model


def token_logprobs(lm: Any, texts: Sequence[str], batch_size: int = 8) -> list[np.ndarray]:
    """Per-token log-probabilities of each text, scored as lm-eval's loglikelihood_rolling scores a
    document: the model's prefix token first, then rolling windows of its context length (so their sum
    is the rolling log-likelihood). Needs a backend that exposes its torch model (hf, gguf, int8)."""
    import torch
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    model = torch_model(lm)
    windows: list[tuple[int, list[int], list[int]]] = []  # (text index, context, continuation)
    for i, text in enumerate(texts):
        tokens = lm.tok_encode(text)
        for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(
                token_list=tokens, prefix_token=lm.prefix_token_id, max_seq_len=lm.max_length, context_len=1)):
            windows.append((i, list(ctx), list(cont)))
    scored: dict[int, np.ndarray] = {}
    order = sorted(range(len(windows)), key=lambda k: -len(windows[k][1]) - len(windows[k][2]))
    device = next(model.parameters()).device
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            chunk = order[lo:lo + batch_size]
            seqs = [(windows[k][1] + windows[k][2])[:-1] for k in chunk]
            width = max(len(seq) for seq in seqs)
            ids = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for r, seq in enumerate(seqs):
                ids[r, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[r, :len(seq)] = 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            for r, k in enumerate(chunk):
                _, ctx, cont = windows[k]
                target = torch.tensor(cont, dtype=torch.long, device=device)
                picked = logp[r, len(ctx) - 1:len(ctx) - 1 + len(cont)].gather(1, target[:, None])[:, 0]
                scored[k] = picked.cpu().numpy().astype(np.float64)
    out: list[list[np.ndarray]] = [[] for _ in texts]
    for k in range(len(windows)):  # windows are disjoint and in text order
        out[windows[k][0]].append(scored[k])
    return [np.concatenate(p) if p else np.zeros(0) for p in out]


def mink_prob(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Min-K% Prob: the mean of the lowest k share of the token log-probs (at least one token)."""
    lp = np.asarray(logprobs, dtype=float)
    if not len(lp):
        return float("nan")
    m = max(1, int(len(lp) * k))
    return float(np.sort(lp)[:m].mean())


# ---- membership labels -----------------------------------------------------------------------------
def load_labels(path: str | Path) -> dict[tuple[str, int], int]:
    """Membership labels: a JSONL or CSV file of task, doc_id, member (1/0, true/false)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"labels file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read labels file {p}: {exc}") from None
    if p.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        where = [f"{p} row {i}" for i in range(2, len(rows) + 2)]
    else:
        rows, where = [], []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise DataError(f"{p} line {i} is not JSON") from None
                where.append(f"{p} line {i}")
    out: dict[tuple[str, int], int] = {}
    truth = {"1": 1, "0": 0, "true": 1, "false": 0, "yes": 1, "no": 0}
    for row, at in zip(rows, where):
        if not isinstance(row, dict) or not {"task", "doc_id", "member"} <= set(row):
            raise DataError(f"{at}: need the fields task, doc_id and member")
        member = truth.get(str(row["member"]).strip().lower())
        try:
            doc_id = int(row["doc_id"])
        except (TypeError, ValueError):
            doc_id = None
        if member is None or doc_id is None:
            raise DataError(f"{at}: doc_id must be an integer and member 1/0 (or true/false)")
        out[(str(row["task"]), doc_id)] = member
    if not out:
        raise DataError(f"labels file {p} holds no labels")
    return out


def membership_summary(df: Any, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Against the labels: the n-gram flag's precision and recall, and the AUROC (bootstrap CI) of
    Min-K% Prob and of the overlap ratio as membership scores."""
    lab = df[df["member"].notna()]
    member = lab["member"].to_numpy(float)
    flagged = lab["contaminated"].fillna(False).to_numpy(bool)
    tp = int((flagged & (member == 1)).sum())
    out: dict[str, Any] = {"n_labelled": len(lab), "n_members": int((member == 1).sum()),
                           "flag": {"flagged": int(flagged.sum()), "true_positives": tp,
                                    "precision": tp / flagged.sum() if flagged.any() else float("nan"),
                                    "recall": tp / (member == 1).sum() if (member == 1).any() else float("nan")}}
    for name in ("mink_prob", "overlap"):
        if name in lab.columns and lab[name].notna().any():
            est = stats.statistic_estimate(stats.auroc, [lab[name].to_numpy(float), member], n_boot=n_boot, seed=seed)
            out[f"auroc_{name}"] = est.to_dict()
    return out


# ---- the whole command ----------------------------------------------------------------------------
def run_contamination(req: ContaminationRequest, *, store: str | Path | None = None,
                      progress: bool = False) -> ContaminationResult:
    """Scan the corpus for the items' n-grams (and score Min-K% Prob), then publish the result."""
    import pandas as pd

    from workbench.eval.harness import _quiet_lm_eval

    _quiet_lm_eval()
    t0 = time.time()
    cstore = ContaminationStore(store)
    files = corpus_files(req.corpus)
    for cf in files:  # before any model or task work
        check_file(cf, req.text_field)
    labels = load_labels(req.labels) if req.labels else None
    if labels is not None and not req.model:
        log.info("labels given without --model: AUROC of the overlap ratio only")
    lm = None
    if req.model:
        from workbench.eval.models import load_model

        lm = load_model(req.model, batch_size=req.batch_size)
    try:
        if lm is not None:
            torch_model(lm)  # refuse a backend without per-token log-probs before the scan
        items, task_meta, builts = _items_from_run(req, cstore) if req.run else _items_from_tasks(req, lm)
        if not items:
            raise WorkbenchError("no benchmark items selected")
        ignored = shared_ngrams(builts, req.ngram, req.ignore_shared) if req.ignore_shared else set()
        index = NgramIndex([it.text for it in items], req.ngram, ignored)
        corpus = scan_corpus(index, files, req.text_field, progress=progress)
        total, hit = index.item_counts()
        overlap = np.where(total > 0, hit / np.maximum(total, 1), np.nan)
        flag = (hit > 0) if req.min_overlap == 0 else (overlap >= req.min_overlap)
        df = pd.DataFrame({
            "task": [it.task for it in items], "doc_id": [it.doc_id for it in items],
            "prompt_hash": [it.prompt_hash for it in items], "n_words": index.item_words,
            "n_ngrams": total, "n_matched": hit, "overlap": overlap,
            "contaminated": pd.array([None if t == 0 else bool(f) for t, f in zip(total, flag)], dtype="boolean"),
        })
        model_info = None
        if lm is not None:
            t_model = time.time()
            lps = token_logprobs(lm, [it.text for it in items], batch_size=req.batch_size)
            df["n_tokens"] = [len(lp) for lp in lps]
            df["mink_prob"] = [mink_prob(lp, req.mink_k) for lp in lps]
            model_info = dict(lm.info.to_dict(), mink_k=req.mink_k, seconds=round(time.time() - t_model, 3))
    finally:
        if lm is not None:
            lm.close()
    if labels is not None:
        df["member"] = pd.array([labels.get((t, d)) for t, d in zip(df["task"], df["doc_id"])], dtype="Int8")
        known = {(t, int(d)) for t, d in zip(df["task"], df["doc_id"])}
        unknown = [k for k in labels if k not in known]
        if unknown:
            raise DataError(f"{len(unknown)} labelled item(s) are not among the scanned items, e.g. "
                            f"{unknown[0][0]}#{unknown[0][1]}")
    manifest = {
        "created": utc_now(),
        "request": asdict(req),
        "ngram": req.ngram,
        "min_overlap": req.min_overlap,
        "rule": ("any n-gram in the corpus" if req.min_overlap == 0 else f"overlap >= {req.min_overlap}")
                + (f"; n-grams in more than {req.ignore_shared} benchmark items ignored ({len(ignored)})"
                   if req.ignore_shared else ""),
        "ignore_shared": req.ignore_shared,
        "n_ignored_ngrams": len(ignored),
        "normalisation": NORMALISATION,
        "corpus": corpus,
        "tasks": task_meta,
        **({"model": model_info} if model_info else {}),  # an artifact's `model` is a mapping when present
        "summary": summarise(df),
        "membership": membership_summary(df) if labels is not None else None,
        "data_dir": str(settings.data_dir(req.data_dir)),
        "packages": package_versions(("lm_eval", "numpy", "pandas", "pyarrow", "torch", "transformers")),
        "seconds": round(time.time() - t0, 3),
    }
    return cstore.save(manifest, df)


def summarise(df: Any) -> dict[str, Any]:
    """Per task: items, items tested (with at least one n-gram), contaminated items, mean overlap."""
    out = {}
    for task, part in df.groupby("task", sort=False):
        tested = part["contaminated"].notna()
        out[str(task)] = {"items": len(part), "tested": int(tested.sum()),
                          "contaminated": int(part["contaminated"].fillna(False).sum()),
                          "mean_overlap": float(part["overlap"].mean()) if tested.any() else float("nan")}
        if "mink_prob" in part.columns:
            out[str(task)]["mean_mink_prob"] = float(part["mink_prob"].mean())
    return out


__all__ = ["ContaminationRequest", "CorpusError", "NgramIndex", "corpus_files", "item_ngrams", "item_text",
           "load_labels", "mink_prob", "run_contamination", "scan_corpus", "token_logprobs", "window_hashes"]
