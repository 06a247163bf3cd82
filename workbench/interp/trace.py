"""Causal tracing (Meng et al. 2022, "ROME"): where in the network a fact is recalled.

The subject's token embeddings are corrupted with Gaussian noise (default 3x the standard deviation of the
model's embeddings over the subject tokens traced, as the paper computes it); then the clean value of one
activation at one (layer, token) is restored and the probability of the answer's first token read at the
last position. Indirect effect = P(restored) - P(corrupted), averaged over seeded noise samples (the same
samples for every cell of a fact). Activations: the residual stream after each layer (`state`,
`blocks.{l}.hook_resid_post`), and MLP / attention outputs (`hook_mlp_out`, `hook_attn_out`) restored over
a window of W layers around layer l (`range(l - W//2, l + ceil(W/2))`, clipped, as ROME).

Batched: each forward holds many (cell, noise sample) rows. Cells at tokens before the subject are not
run: the noise has not reached them, so restoring them is a no-op and their value is the corrupted one.

A dataset (`known_facts`: the ROME known-facts set in the benchmark mirror, or a JSON/JSONL file of
{prompt, subject, attribute}) is screened in a seeded order: a fact qualifies when the attribute's first
token is the model's top prediction (or has probability >= `min_prob`), until `limit` qualify. Per-fact
grids are averaged by token role as in the paper (first / middle / last subject token, first subsequent
token, further tokens, last token).
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench import settings
from workbench.argtypes import csv, int_at_least
from workbench.errors import DataError
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError, TokenError
from workbench.interp.hooks import HookedModel
from workbench.interp.tools import Tool, arg, register_tool, single_token_or_none

SITES = {"state": "blocks.{layer}.hook_resid_post", "mlp": "blocks.{layer}.hook_mlp_out",
         "attn": "blocks.{layer}.hook_attn_out"}
ROLES = ("first subject", "middle subject", "last subject", "first subsequent", "further", "last")
DATASETS = {"known_facts": "known_facts/known_1000.json"}
EMBED_HOOK = "hook_embed"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fact:
    prompt: str
    subject: str
    target: str                 # the answer text; its first token is traced
    known_id: int | None = None


@dataclass(frozen=True)
class Prepared:
    fact: Fact
    tokens: torch.Tensor        # [1, T]
    start: int                  # subject tokens [start, end)
    end: int
    target_id: int


def subject_span(model: HookedModel, prompt: str, subject: str) -> tuple[torch.Tensor, int, int]:
    """(token ids [1, T], first subject token, one past the last) for the first occurrence of `subject`."""
    at = prompt.find(subject) if subject else -1
    if at < 0:
        raise InterpError(f"subject {subject!r} does not occur in the prompt {prompt!r}")
    enc = model.tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
    ids, spans = enc["input_ids"], enc["offset_mapping"]
    covered = [i for i, (a, b) in enumerate(spans) if b > a and a < at + len(subject) and b > at]
    model.check_length(len(ids))
    return torch.tensor([ids]), covered[0], covered[-1] + 1


def first_token(model: HookedModel, text: str) -> int:
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise TokenError(f"target {text!r} tokenises to nothing")
    return int(ids[0])


def prepare(model: HookedModel, fact: Fact, *, single: bool) -> Prepared:
    """Tokens, subject span and target id; `single`: the target must be exactly one token."""
    tokens, start, end = subject_span(model, fact.prompt, fact.subject)
    target = model.single_token(fact.target) if single else first_token(model, fact.target)
    return Prepared(fact, tokens, start, end, target)


# ---- datasets -----------------------------------------------------------------------------------
def load_facts(name: str, data_dir: str | os.PathLike | None = None) -> list[Fact]:
    """Facts of a named dataset in the mirror (`known_facts`) or a JSON/JSONL file of {prompt, subject, attribute}."""
    path = settings.data_dir(data_dir) / DATASETS[name] if name in DATASETS else Path(name)
    if not path.is_file():
        known = ", ".join(DATASETS)
        raise DataError(f"fact set {name!r} not found ({path}); use one of {known} (from the benchmark mirror) "
                        "or a JSON/JSONL file of {prompt, subject, attribute}")
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name}: not JSON ({exc.msg})") from None
    facts = []
    for i, r in enumerate(rows, 1):
        missing = [k for k in ("prompt", "subject", "attribute") if not isinstance(r, dict) or not isinstance(r.get(k), str)]
        if missing:
            raise DataError(f"{path.name} record {i}: missing field(s) {', '.join(missing)}")
        facts.append(Fact(r["prompt"], r["subject"], " " + r["attribute"].strip(), r.get("known_id")))
    return facts


@torch.no_grad()
def screen(model: HookedModel, facts: Sequence[Fact], *, limit: int | None, min_prob: float | None, seed: int,
           chunk: int = 64) -> tuple[list[Prepared], pd.DataFrame]:
    """Facts the model gets right (target's first token at rank 1, or P >= min_prob), in a seeded order."""
    order = np.random.default_rng(seed).permutation(len(facts))
    rows, chosen = [], []
    for s in range(0, len(order), chunk):
        batch = []
        for i in order[s:s + chunk]:
            try:
                batch.append((int(i), prepare(model, facts[i], single=False)))
            except InterpError as exc:
                rows.append({"fact": int(i), "known_id": facts[i].known_id, "subject": facts[i].subject,
                             "target": facts[i].target, "prob": np.nan, "rank": -1, "qualified": False,
                             "skipped": str(exc)})
        by_len: dict[int, list[tuple[int, Prepared]]] = {}
        for item in batch:
            by_len.setdefault(item[1].tokens.shape[1], []).append(item)
        for items in by_len.values():
            logits = model.logits(torch.cat([p.tokens for _, p in items]))[:, -1, :].float()
            probs = torch.softmax(logits, -1)
            for j, (i, p) in enumerate(items):
                prob = float(probs[j, p.target_id])
                rank = int((logits[j] > logits[j, p.target_id]).sum())
                ok = prob >= min_prob if min_prob is not None else rank == 0
                rows.append({"fact": i, "known_id": p.fact.known_id, "subject": p.fact.subject, "target": p.fact.target,
                             "prob": prob, "rank": rank, "qualified": ok, "skipped": ""})
                if ok:
                    chosen.append((i, p))
        if limit is not None and len(chosen) >= limit:
            break
    rank = {int(i): j for j, i in enumerate(order)}
    chosen.sort(key=lambda x: rank[x[0]])
    kept = [p for _, p in chosen[:limit]]
    return kept, pd.DataFrame(rows)


def embedding_std(model: HookedModel, prepared: Sequence[Prepared]) -> float:
    """Std of the input embeddings (as the residual stream receives them) over all subject tokens."""
    emb = model.hf.get_input_embeddings()
    with torch.no_grad():
        vals = [emb(p.tokens[0, p.start:p.end]).float().flatten() for p in prepared]
    return float(torch.cat(vals).std())


# ---- the trace ----------------------------------------------------------------------------------
def window_layers(layer: int, window: int, n_layers: int) -> range:
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


@torch.no_grad()
def restore_probs(model: HookedModel, p: Prepared, noise: torch.Tensor, cells: Sequence[Sequence[tuple[str, int]]],
                  clean: dict[str, torch.Tensor], *, batch_size: int = 128) -> np.ndarray:
    """P(target) [cell, sample]: subject embeddings + noise[sample], each cell's (hook, position)s restored."""
    S = noise.shape[0]
    per = max(1, batch_size // S)
    out = []
    for c0 in range(0, len(cells), per):
        chunk = cells[c0:c0 + per]
        rows = len(chunk) * S
        where: dict[str, tuple[list[int], list[int]]] = {}
        for j, cell in enumerate(chunk):
            for name, pos in cell:
                r, t = where.setdefault(name, ([], []))
                r += range(j * S, (j + 1) * S)
                t += [pos] * S
        hooks = [(EMBED_HOOK, _add_at(p.start, p.end, noise.repeat(len(chunk), 1, 1)))]
        hooks += [(name, _set_at(torch.tensor(r), torch.tensor(t), clean[name][t])) for name, (r, t) in where.items()]
        logits = model.run_with_hooks(p.tokens.expand(rows, -1), hooks)
        out.append(torch.softmax(logits[:, -1, :].float(), -1)[:, p.target_id].view(len(chunk), S))
    return torch.cat(out).numpy() if out else np.zeros((0, S))


def _add_at(start: int, end: int, noise: torch.Tensor):
    """Hook adding `noise` [rows, end - start, d] to positions [start, end) of every row."""
    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        act[:, start:end] += noise.to(act.dtype)
        return act
    return hook


def _set_at(rows: torch.Tensor, pos: torch.Tensor, values: torch.Tensor):
    """Hook setting act[rows[i], pos[i]] = values[i]."""
    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        act[rows, pos] = values.to(act.dtype)
        return act
    return hook


def make_noise(p: Prepared, samples: int, scale: float, d_model: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng([seed, *p.tokens[0].tolist()])
    return torch.from_numpy(rng.standard_normal((samples, p.end - p.start, d_model)).astype(np.float32) * scale)


def trace_fact(model: HookedModel, p: Prepared, *, scale: float, samples: int, window: int, kinds: Sequence[str],
               seed: int, batch_size: int) -> dict[str, Any]:
    """Clean and corrupted P(target) and each kind's [layer, token] grid of restored P(target)."""
    L, T = model.n_layers, p.tokens.shape[1]
    names = [SITES[k].format(layer=l) for k in kinds for l in range(L)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(p.tokens, names)
    clean = {n: v[0] for n, v in cache.items()}
    clean_prob = float(torch.softmax(logits[0, -1].float(), -1)[p.target_id])
    noise = make_noise(p, samples, scale, model.d_model, seed)
    # one "cell" with nothing restored (the corrupted run), then every cell at or after the subject
    cells: list[list[tuple[str, int]]] = [[]]
    index = []
    for k in kinds:
        for l in range(L):
            layers = [l] if k == "state" else window_layers(l, window, L)
            for t in range(p.start, T):
                index.append((k, l, t))
                cells.append([(SITES[k].format(layer=j), t) for j in layers])
    probs = restore_probs(model, p, noise, cells, clean, batch_size=batch_size).mean(axis=1)
    corrupt_prob = float(probs[0])
    grids = {k: np.full((L, T), corrupt_prob) for k in kinds}
    for (k, l, t), v in zip(index, probs[1:]):
        grids[k][l, t] = v
    return {"clean_prob": clean_prob, "corrupt_prob": corrupt_prob, "grids": grids}


def role_positions(start: int, end: int, n_tokens: int) -> list[list[int]]:
    """Token positions of each role in ROLES (a position may serve two roles, e.g. a one-token subject)."""
    last = n_tokens - 1
    return [[start], list(range(start + 1, end - 1)), [end - 1], [end] if end < last else [],
            list(range(end + 1, last)), [last]]


def by_role(grid: np.ndarray, start: int, end: int, corrupt_prob: float) -> np.ndarray:
    """[layer, role] mean indirect effect over each role's positions (NaN where a role has none)."""
    out = np.full((grid.shape[0], len(ROLES)), np.nan)
    for j, pos in enumerate(role_positions(start, end, grid.shape[1])):
        if pos:
            out[:, j] = grid[:, pos].mean(axis=1) - corrupt_prob
    return out


@register_kind("trace")
@dataclass
class TraceResult:
    meta: Meta
    kinds: list[str]
    noise: float                      # absolute noise scale used
    noise_rule: str                   # "3sigma" (multiple of sigma) or "fixed"
    sigma: float                      # embedding std over the subject tokens traced
    samples: int
    window: int
    dataset: str | None
    tried: int                        # facts screened (dataset mode) or traced
    qualified: int
    timings: dict[str, float]
    facts: pd.DataFrame               # per traced fact: prompt, subject, target, span, clean/corrupted P(target)
    state: np.ndarray | None = None   # [fact, layer, token] restored P(target); NaN past a prompt's end
    mlp: np.ndarray | None = None
    attn: np.ndarray | None = None
    roles_state: np.ndarray | None = None   # [fact, layer, role] indirect effect by token role
    roles_mlp: np.ndarray | None = None
    roles_attn: np.ndarray | None = None
    screen: pd.DataFrame | None = None      # dataset mode: every fact tried, P and rank of its target
    roles: list[str] = field(default_factory=lambda: list(ROLES))
    notes: dict[str, Any] = field(default_factory=dict)

    def grid(self, kind: str, fact: int = 0) -> np.ndarray:
        """Restored P(target) [layer, token] of one fact."""
        g = getattr(self, kind, None)
        if g is None:
            raise InterpError(f"this trace has no {kind!r} grid (kinds: {', '.join(self.kinds)})")
        n = int(self.facts["n_tokens"].iloc[fact])
        return np.asarray(g[fact, :, :n], dtype=float)

    def effect(self, kind: str, fact: int = 0) -> np.ndarray:
        """Indirect effect [layer, token] of one fact: restored - corrupted P(target)."""
        return self.grid(kind, fact) - float(self.facts["corrupt_prob"].iloc[fact])

    def average(self, kind: str) -> np.ndarray:
        """Mean indirect effect [layer, role] over facts (facts lacking a role are left out of its mean)."""
        g = np.asarray(getattr(self, f"roles_{kind}"), dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a role no fact has stays NaN
            return np.nanmean(g, axis=0)

    def peak(self, kind: str) -> tuple[int, str, float]:
        """(layer, role, effect) of the largest average indirect effect."""
        a = self.average(kind)
        l, r = np.unravel_index(np.nanargmax(a), a.shape)
        return int(l), self.roles[int(r)], float(a[l, r])

    def summary(self) -> str:
        f = self.facts
        lines = [f"{len(f)} fact(s) traced" + (f" ({self.qualified} qualified of {self.tried} tried in {self.dataset})"
                                              if self.dataset else "")
                 + f"; noise {self.noise:.4f} ({self.noise_rule}, sigma {self.sigma:.4f}), {self.samples} samples, "
                 f"window {self.window}",
                 f"mean P(target): clean {f['clean_prob'].mean():.4f}, corrupted {f['corrupt_prob'].mean():.4f}"]
        for k in self.kinds:
            l, role, v = self.peak(k)
            a = self.average(k)
            last_subj = int(np.nanargmax(a[:, 2]))
            lines.append(f"{k:<5} peak effect {v:+.4f} at layer {l}, {role} token; at the last subject token it peaks "
                         f"at layer {last_subj} ({a[last_subj, 2]:+.4f}), at the last token {a[:, 5].max():+.4f}")
        return "\n".join(lines)


def run(model: HookedModel, facts: Sequence[Fact] | None = None, *, dataset: str | None = None,
          limit: int | None = 20, skip: int = 0, min_prob: float | None = None, noise: str | float = "3sigma", samples: int = 10,
          window: int = 10, kinds: Sequence[str] = ("state", "mlp", "attn"), seed: int = 0, batch_size: int = 128,
          data_dir: str | os.PathLike | None = None, source: dict[str, Any] | None = None) -> TraceResult:
    """Causal traces of `facts` (each target exactly one token), or of the qualifying facts of `dataset`."""
    bad = [k for k in kinds if k not in SITES]
    if bad or not kinds:
        raise InterpError(f"unknown trace kind {bad[0] if bad else ''!r}: use {', '.join(SITES)}")
    t0 = time.perf_counter()
    table = None
    if dataset is not None:
        pool = load_facts(dataset, data_dir)
        prepared, table = screen(model, pool, limit=None if limit is None else skip + limit, min_prob=min_prob, seed=seed)
        prepared = prepared[skip:]
        tried, qualified = len(table), int(table["qualified"].sum())
        log.info("%d of %d facts tried qualified; tracing %d (from #%d)", qualified, tried, len(prepared), skip)
        sigma_from = [p for p in (_try_prepare(model, f) for f in pool) if p is not None]
        if not prepared:
            raise InterpError(f"none of the {tried} facts tried qualified for {model.spec} "
                              f"({'P >= ' + str(min_prob) if min_prob is not None else 'target at rank 1'})")
    else:
        if not facts:
            raise InterpError("nothing to trace: give --facts NAME, or --prompt TEXT --subject SPAN --target TOKEN")
        prepared = [prepare(model, f, single=True) for f in facts]
        tried = qualified = len(prepared)
        sigma_from = prepared
    sigma = embedding_std(model, sigma_from)
    scale, rule = _noise_scale(noise, sigma)
    t_screen = time.perf_counter() - t0
    L = model.n_layers
    T = max(p.tokens.shape[1] for p in prepared)
    grids = {k: np.full((len(prepared), L, T), np.nan, dtype=np.float32) for k in kinds}
    roles = {k: np.full((len(prepared), L, len(ROLES)), np.nan, dtype=np.float32) for k in kinds}
    rows = []
    for i, p in enumerate(prepared):
        t = time.perf_counter()
        r = trace_fact(model, p, scale=scale, samples=samples, window=window, kinds=kinds, seed=seed, batch_size=batch_size)
        log.info("traced %d/%d %r -> %r: clean %.3f, corrupted %.3f (%.0f s)", i + 1, len(prepared), p.fact.subject,
                 p.fact.target, r["clean_prob"], r["corrupt_prob"], time.perf_counter() - t)
        n = p.tokens.shape[1]
        for k in kinds:
            grids[k][i, :, :n] = r["grids"][k]
            roles[k][i] = by_role(r["grids"][k], p.start, p.end, r["corrupt_prob"])
        rows.append({"known_id": p.fact.known_id, "prompt": p.fact.prompt, "subject": p.fact.subject,
                     "target": p.fact.target, "target_id": p.target_id, "n_tokens": n, "subject_start": p.start,
                     "subject_end": p.end, "clean_prob": r["clean_prob"], "corrupt_prob": r["corrupt_prob"]})
    timings = {"screen_s": t_screen, "trace_s": time.perf_counter() - t0 - t_screen}
    meta = make_meta("trace", model, [p.fact.prompt for p in prepared], [p.tokens[0].tolist() for p in prepared],
                     {"dataset": dataset, "limit": limit, "skip": skip, "min_prob": min_prob, "noise": str(noise), "samples": samples,
                      "window": window, "kinds": list(kinds), "seed": seed, "batch_size": batch_size,
                      "qualify": f"P >= {min_prob}" if min_prob is not None else "target's first token at rank 1",
                      "sites": {k: SITES[k] for k in kinds}, "noise_hook": EMBED_HOOK}, source)
    return TraceResult(meta=meta, kinds=list(kinds), noise=scale, noise_rule=rule, sigma=sigma, samples=samples,
                       window=window, dataset=dataset, tried=tried, qualified=qualified, timings=timings,
                       facts=pd.DataFrame(rows), screen=table,
                       **{k: grids[k] for k in kinds}, **{f"roles_{k}": roles[k] for k in kinds})


def _try_prepare(model: HookedModel, fact: Fact) -> Prepared | None:
    try:
        return prepare(model, fact, single=False)
    except InterpError:
        return None


def _noise_scale(noise: str | float, sigma: float) -> tuple[float, str]:
    text = str(noise).strip().lower()
    try:
        if text.endswith("sigma"):
            return float(text[:-5] or 1) * sigma, text
        value = float(text)
    except ValueError:
        raise InterpError(f"--noise must be a multiple of sigma such as 3sigma, or a number; got {noise!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InterpError(f"--noise must be a non-negative number or Nsigma; got {noise!r}")
    return value, "fixed"


def _from_cli(a: Any, p: Any, model: Any) -> dict[str, Any]:
    common = dict(noise=a.noise, samples=a.samples, window=a.window, kinds=a.kinds, seed=a.seed,
                  batch_size=a.batch_size, limit=a.limit, skip=a.skip, min_prob=a.min_prob, data_dir=a.data_dir)
    if a.facts:
        if p.texts:
            raise InterpError("give either --facts or a prompt (--prompt / --run --sample), not both")
        return dict(dataset=a.facts, **common)
    if not p.texts:
        raise InterpError("nothing to trace: give --facts NAME, or --prompt TEXT --subject SPAN --target TOKEN")
    if len(p.texts) > 1:
        raise InterpError("trace takes one prompt")
    if not a.subject:
        raise InterpError("--subject is required with a prompt (the span of the prompt to corrupt)")
    target = a.target or single_token_or_none(model, p.sample and p.sample.target_text)
    if not target:
        raise InterpError("--target is required (the single token the prompt should predict)")
    return dict(facts=[Fact(p.text, a.subject, target)], **common)


TOOL = register_tool(Tool(
    name="trace", run=run, prompt="optional",
    help="causal tracing (ROME): corrupt the subject's embeddings with noise, restore the clean residual stream, "
         "MLP or attention output at one (layer, token) at a time, and record P(target); on one prompt or on the "
         "facts of a dataset (known_facts) the model gets right, averaged by token role",
    args=(arg("--facts", help="a fact set: known_facts (ROME's, from the benchmark mirror) or a JSON/JSONL file of "
                              "{prompt, subject, attribute}"),
          arg("--subject", help="with --prompt or --run/--sample: the subject span to corrupt (must occur in the prompt)"),
          arg("--target", help="with --prompt: the answer, exactly one token (default: a sample's one-token gold)"),
          arg("--noise", default="3sigma", help="noise scale: Nsigma (N x the subject-token embedding std) or a number "
                                                "(default 3sigma)"),
          arg("--samples", type=int_at_least(1), default=10, help="noise samples per fact (default 10)"),
          arg("--window", type=int_at_least(1), default=10, help="layers restored together for mlp/attn (default 10)"),
          arg("--limit", type=int_at_least(1), default=20, help="facts to trace from a fact set (default 20)"),
          arg("--skip", type=int_at_least(0), default=0,
              help="skip the first N qualifying facts (shards of one screening order run in parallel)"),
          arg("--min-prob", type=float, help="qualify facts by P(target) >= this instead of rank 1"),
          arg("--kinds", type=csv, default=["state", "mlp", "attn"], help="state,mlp,attn (default all three)"),
          arg("--seed", type=int, default=0, help="screening order and noise seed (default 0)"),
          arg("--batch-size", type=int_at_least(1), default=128, help="(cell, noise sample) rows per forward (default 128)"),
          arg("--data-dir", help=settings.DATA_HELP)),
    from_cli=_from_cli,
))
