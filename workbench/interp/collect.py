"""Activation corpora: stream text through the hook layer and store activations for the corpus tools.

`workbench interp collect --model M --layers 15,25 [--sites resid_post,mlp_neurons] [--tokens N]
[--corpus mirror|FILE|DIR]` tokenises documents (`workbench.interp.corpus`; each truncated to
`--max-len` tokens), runs them in batches of similar length (right-padded: under causal attention no
real token sees a pad, so real positions are exact) and writes shards of about `--shard-tokens`
tokens to the activation store (`workbench.store.activations`) as they fill. Memory is bounded by
one shard of activations plus one batch, whatever the budget. Shards are written in a fixed order
from a fixed document stream, so `--resume CORPUS_ID` after an interruption recomputes only the
missing shards and gives the same files an uninterrupted run would.

The corpus id is also the id of a small `activations` artifact that records the collection
(throughput, peak memory, provenance), printed at the end.
"""
from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import csv, int_at_least, ints
from workbench.interp.artifacts import Meta, register_kind
from workbench.interp.corpus import HELDOUT_EVERY, Document, text_corpus
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.sites import SITES, check_layers, hook_name, parse_hook
from workbench.interp.tools import Tool, arg, register_tool
from workbench.settings import ACTIVATIONS_HELP, DATA_HELP
from workbench.store.activations import ActivationError, ActivationStore, Corpus
from workbench.store.artifacts import new_artifact_id
from workbench.store.provenance import utc_now

log = logging.getLogger(__name__)
# Parameters that decide the shards' content: a resumed collection must use the same ones.
_SHAPING = ("tokens", "corpus", "split", "max_len", "batch_tokens", "shard_tokens")


@register_kind("activations")
@dataclass
class ActivationsResult:
    meta: Meta
    corpus_id: str
    path: str
    layers: list[int]
    sites: dict[str, int]          # hook name -> width
    n_tokens: int
    n_docs: int
    n_shards: int
    resumed_shards: int            # shards found complete on disk and not recomputed
    seconds: float                 # model time of this session
    tokens_per_s: float            # tokens computed in this session / its model time
    peak_rss_mb: float             # the process' peak resident memory
    sources: pd.DataFrame          # file, sha256, docs, tokens

    def summary(self) -> str:
        lines = [f"corpus {self.corpus_id}: {self.n_tokens:,} tokens, {self.n_docs:,} documents in {self.n_shards} shards",
                 f"sites: {', '.join(f'{k} ({v})' for k, v in self.sites.items())}",
                 f"{self.tokens_per_s:,.0f} tokens/s over {self.seconds:.0f} s; peak memory {self.peak_rss_mb:,.0f} MB"
                 + (f"; {self.resumed_shards} shard(s) already complete" if self.resumed_shards else "")]
        by = self.sources.assign(top=self.sources["file"].str.split("/").str[0]).groupby("top")[["docs", "tokens"]].sum()
        lines += [f"  {k:<12} {int(r.docs):>7,} docs {int(r.tokens):>9,} tokens" for k, r in by.iterrows()]
        return "\n".join(lines)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class _Doc:
    id: int
    doc: Document
    ids: list[int]


def _shard_plans(docs: Iterator[Document], tokenize: Callable[[str], list[int]], *, tokens: int, max_len: int,
                 shard_tokens: int) -> Iterator[list[_Doc]]:
    """Documents grouped into shards (a document never crosses one), until `tokens` are taken."""
    shard: list[_Doc] = []
    n_shard = total = 0
    doc_id = 0
    for doc in docs:
        ids = tokenize(doc.text)[:max_len][: tokens - total]
        if not ids:
            continue
        shard.append(_Doc(doc_id, doc, ids))
        doc_id += 1
        n_shard += len(ids)
        total += len(ids)
        if n_shard >= shard_tokens or total >= tokens:
            yield shard
            shard, n_shard = [], 0
        if total >= tokens:
            return
    if shard:
        yield shard


def _batches(docs: list[_Doc], batch_tokens: int) -> Iterator[list[int]]:
    """Indexes into `docs`, in length order, grouped so each padded batch holds at most `batch_tokens`."""
    order = sorted(range(len(docs)), key=lambda i: len(docs[i].ids))
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * len(docs[i].ids) > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.no_grad()
def run_shard(model: HookedModel, docs: list[_Doc], hooks: Sequence[str], batch_tokens: int,
              progress: Callable[[int], Any] | None = None) -> dict[str, np.ndarray]:
    """tokens, doc, pos and float16 activations [n, width] per hook for the documents, in document order."""
    pad = model.tokenizer.pad_token_id
    pad = pad if pad is not None else (model.tokenizer.eos_token_id or 0)
    per_doc: list[dict[str, np.ndarray]] = [{} for _ in docs]
    for batch in _batches(docs, batch_tokens):
        n = max(len(docs[i].ids) for i in batch)
        tokens = torch.full((len(batch), n), pad, dtype=torch.long)
        for j, i in enumerate(batch):
            tokens[j, : len(docs[i].ids)] = torch.tensor(docs[i].ids)
        _, cache = model.run_with_cache(tokens, list(hooks), need_logits=False)
        for j, i in enumerate(batch):
            k = len(docs[i].ids)
            per_doc[i] = {h: cache[h][j, :k].to(torch.float16).numpy() for h in hooks}
        if progress is not None:
            progress(sum(len(docs[i].ids) for i in batch))
    out = {"tokens": np.concatenate([np.asarray(d.ids, dtype=np.int32) for d in docs]),
           "doc": np.concatenate([np.full(len(d.ids), d.id, dtype=np.int64) for d in docs]),
           "pos": np.concatenate([np.arange(len(d.ids), dtype=np.int32) for d in docs])}
    for h in hooks:
        out[h] = np.concatenate([p[h] for p in per_doc])
    return out


def _record(docs: list[_Doc], file_sha: Callable[[str], str]) -> dict[str, Any]:
    """A shard's provenance: its documents (id, source reference) and the files they came from."""
    sources: dict[str, dict[str, Any]] = {}
    for d in docs:
        s = sources.setdefault(d.doc.file, {"sha256": file_sha(d.doc.file), "docs": 0, "tokens": 0})
        s["docs"] += 1
        s["tokens"] += len(d.ids)
    return {"n_docs": len(docs), "docs": {"doc": [d.id for d in docs], "ref": [d.doc.ref for d in docs],
                                          "source": [d.doc.source for d in docs]},
            "sources": sources}


def run(model: HookedModel, *, layers: Sequence[int], sites: Sequence[str] = ("resid_post",),
        tokens: int = 200_000, corpus: str = "mirror", split: str = "train", max_len: int = 256,
        batch_tokens: int = 2048, shard_tokens: int = 16_384, data_dir: str | os.PathLike | None = None,
        activations: str | os.PathLike | None = None, resume: str | None = None, progress: bool = True,
        on_shard: Callable[[int], None] | None = None, source: dict[str, Any] | None = None) -> ActivationsResult:
    """Collect (or, with `resume`, finish collecting) an activation corpus; returns its record."""
    layers = check_layers(model, layers)
    if not sites:
        raise InterpError("no activation site given (--sites resid_post,mlp_out,mlp_neurons)")
    hooks = {hook_name(model, s, l): SITES.get(s).width(model) for l in layers for s in dict.fromkeys(sites)}
    if tokens < 1:
        raise InterpError(f"token budget must be at least 1, got {tokens}")
    if min(max_len, batch_tokens, shard_tokens) < 1:
        raise InterpError("--max-len, --batch-tokens and --shard-tokens must be positive")
    params = {"tokens": tokens, "corpus": corpus, "split": split, "max_len": max_len, "batch_tokens": batch_tokens,
              "shard_tokens": shard_tokens, "heldout_every": HELDOUT_EVERY, "dtype": "float16",
              "padding": "right, no attention mask (causal: real positions exact)",
              "dedupe": "whitespace-normalised text", "tokenizer": "HF tokenizer, add_special_tokens=True"}
    store = ActivationStore(activations)
    text = text_corpus(corpus, data_dir)
    done: list[dict[str, Any]] = []
    store_corpus: Corpus | None = None
    if resume:
        store_corpus = store.open(resume)
        m = store_corpus.manifest
        if m.get("status") == "complete":
            raise InterpError(f"corpus {resume} is already complete")
        if m["model"]["sha256"] != model.ref.sha256:
            raise InterpError(f"corpus {resume} was collected from {m['model']['spec']} (sha256 "
                              f"{m['model']['sha256'][:12]}), not {model.spec}")
        differ = [k for k in _SHAPING if m["params"].get(k) != params[k]]
        if differ or m["sites"] != hooks:
            what = ", ".join(f"{k}={m['params'].get(k)!r}" for k in differ) or f"sites {list(m['sites'])}"
            raise InterpError(f"corpus {resume} was collected with {what}; resume it with the same settings")
        store_corpus.discard_incomplete()
        done = store_corpus.shards()
    corpus_id = resume or new_artifact_id("activations")
    manifest = {"created": utc_now(), "model": {"spec": model.spec, "sha256": model.ref.sha256,
                                                "checkpoint": str(model.ref.checkpoint)},
                "layers": layers, "sites": hooks, "params": params, "text": text.name}

    def tokenize(t: str) -> list[int]:
        return model.tokenizer(t, add_special_tokens=True)["input_ids"]

    plans = _shard_plans(text.documents(split), tokenize, tokens=tokens, max_len=max_len, shard_tokens=shard_tokens)
    bar = _progress(tokens, progress, sum(int(s["n_tokens"]) for s in done))
    seconds, computed = 0.0, 0
    try:
        for index, docs in enumerate(plans):
            record = _record(docs, text.file_sha)
            if index < len(done):
                if done[index]["docs"] != record["docs"]:
                    raise ActivationError(f"corpus {corpus_id}: shard {index} on disk holds other documents than "
                                          "this collection would write (the text source changed?)")
                continue
            if store_corpus is None:
                store_corpus = store.create(corpus_id, manifest)
            t0 = time.perf_counter()
            arrays = run_shard(model, docs, list(hooks), batch_tokens, bar.update)
            seconds += time.perf_counter() - t0
            computed += len(arrays["tokens"])
            store_corpus.write_shard(index, arrays, record)
            if on_shard is not None:
                on_shard(index)
    finally:
        bar.close()
    if store_corpus is None:
        raise InterpError(f"corpus {text.name!r} has no text to collect (no non-empty documents in split {split!r})")
    if text.missing:
        log.warning("%d mirror file(s) not found and skipped: %s", len(text.missing), ", ".join(text.missing[:5])
                    + (" ..." if len(text.missing) > 5 else ""))
    shards = store_corpus.shards()
    totals = {"n_tokens": sum(int(r["n_tokens"]) for r in shards), "n_docs": sum(int(r["n_docs"]) for r in shards),
              "n_shards": len(shards), "seconds": round(seconds, 3),
              "tokens_per_s": computed / seconds if seconds else 0.0, "peak_rss_mb": round(peak_rss_mb(), 1),
              "resumed_shards": len(done)}
    store_corpus.update(status="complete", finished=utc_now(), totals=totals, missing=text.missing,
                        files={f: s["sha256"] for r in shards for f, s in r["sources"].items()})
    return corpus_record(store_corpus, source)


def corpus_record(corpus: Corpus, source: dict[str, Any] | None = None) -> ActivationsResult:
    """The `activations` artifact of a complete corpus (its id is the corpus id), from its manifest and shards."""
    m = corpus.manifest
    if not corpus.complete:
        raise InterpError(f"corpus {corpus.id} is incomplete")
    sources: dict[str, dict[str, Any]] = {}
    for r in corpus.shards():
        for f, s in r["sources"].items():
            agg = sources.setdefault(f, {"sha256": s["sha256"], "docs": 0, "tokens": 0})
            agg["docs"] += s["docs"]
            agg["tokens"] += s["tokens"]
    table = pd.DataFrame([{"file": f, **s} for f, s in sorted(sources.items())], columns=["file", "sha256", "docs", "tokens"])
    t = m["totals"]
    site_names = sorted({parse_hook(h)[0] for h in m["sites"]}, key=list(SITES.names()).index)
    meta = Meta(kind="activations", model=m["model"], prompts=[], tokens=[], source=source, id=corpus.id,
                params={**m["params"], "layers": m["layers"], "sites": site_names,
                        "activations_root": str(corpus.path.parent)})
    return ActivationsResult(meta=meta, corpus_id=corpus.id, path=str(corpus.path), layers=m["layers"], sites=m["sites"],
                             n_tokens=t["n_tokens"], n_docs=t["n_docs"], n_shards=t["n_shards"],
                             resumed_shards=int(t.get("resumed_shards", 0)), seconds=t["seconds"],
                             tokens_per_s=t["tokens_per_s"], peak_rss_mb=t["peak_rss_mb"], sources=table)


def _progress(total: int, enabled: bool, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", unit_scale=True, desc="collecting", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


def open_corpus(model: HookedModel, hook: str, corpus_id: str | None = None,
                activations: str | os.PathLike | None = None) -> Corpus:
    """The corpus `corpus_id`, else the newest complete corpus of this model that stores `hook`."""
    store = ActivationStore(activations)
    if corpus_id:
        c = store.open(corpus_id)
        if not c.complete:
            raise InterpError(f"corpus {corpus_id} is incomplete; finish it with `workbench interp collect --resume "
                              f"{corpus_id}` (same settings)")
        if c.manifest["model"]["sha256"] != model.ref.sha256:
            raise InterpError(f"corpus {corpus_id} holds activations of {c.manifest['model']['spec']}, not {model.spec}")
        c.require(hook)
        return c
    for m in reversed(store.list()):
        if m.get("status") == "complete" and m["model"]["sha256"] == model.ref.sha256 and hook in m["sites"]:
            return store.open(m["id"])
    raise InterpError(f"no complete activation corpus of {model.spec} with {hook} in {store.root}; "
                      f"collect one with `workbench interp collect --model {model.spec} --layers ... --sites ...`")


TOOL = register_tool(Tool(
    name="activations", cli="collect", run=run, prompt="none",
    help="collect an activation corpus: stream text (default: the benchmark mirror) through the model and store "
         "activations at the given layers and sites, sharded float16 with token ids and (document, position) keys; "
         "resumable",
    args=(arg("--layers", type=ints, required=True, help="layers, comma-separated (e.g. 15,25)"),
          arg("--sites", type=csv, default=["resid_post"],
              help="sites, comma-separated: resid_post, resid_pre, resid_mid, mlp_out, attn_out, mlp_neurons "
                   "(default resid_post)"),
          arg("--tokens", type=int_at_least(1), default=200_000, help="token budget (default 200000)"),
          arg("--corpus", default="mirror", help="`mirror` (default: benchmark text) or a .txt/.jsonl/.json file or a "
                                                  "directory of them"),
          arg("--split", default="train", choices=["train", "heldout", "all"],
              help="the document split (1 in 20 documents is held out for evaluation; default train)"),
          arg("--max-len", type=int_at_least(2), default=256, help="tokens kept per document (default 256)"),
          arg("--batch-tokens", type=int_at_least(1), default=2048, help="padded tokens per forward pass (default 2048)"),
          arg("--shard-tokens", type=int_at_least(1), default=16_384, help="tokens per shard (default 16384)"),
          arg("--resume", metavar="CORPUS_ID", help="finish an interrupted collection (same settings)"),
          arg("--activations", help=ACTIVATIONS_HELP),
          arg("--data-dir", help=DATA_HELP),
          arg("--no-progress", action="store_true", help="no progress bar")),
    from_cli=lambda a, p, m: dict(layers=a.layers, sites=a.sites, tokens=a.tokens, corpus=a.corpus, split=a.split,
                                  max_len=a.max_len, batch_tokens=a.batch_tokens, shard_tokens=a.shard_tokens,
                                  resume=a.resume, activations=a.activations, data_dir=a.data_dir,
                                  progress=not (a.no_progress or a.quiet)),
))
