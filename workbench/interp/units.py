"""What a unit responds to, from a stored activation corpus: the engine behind `neurons` and `features`.

A unit is one coordinate of an encoding of the stored activations: an MLP neuron (the identity on
`mlp_neurons`) or an SAE latent (its encoder on `resid_post`, ...). Two passes over the shards, one
shard in memory at a time:

1. per unit: max, mean, density (share of tokens where it is > 0), the `top` activating (document,
   position) keys, and the mean activation on each of the corpus' frequent tokens (for "which units
   fire most on this token");
2. per unit: a histogram of its activations (neurons: all values between its min and max; SAE
   latents: the non-zero ones), and the context window around each top activation with the unit's
   activation on every token of the window.

`logit_effects` gives each unit's direct effect on the logits: its output direction (a neuron's row of
the MLP output weight, a latent's decoder row) times the final norm's gain, through the unembedding.
It ignores the norm's division by the residual's scale and every later layer: it is the direct path.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.interp.errors import InterpError
from workbench.store.activations import Corpus

Encode = Callable[[torch.Tensor], torch.Tensor]   # stored activations [n, width] float32 -> units [n, n_units]


@dataclass
class UnitScan:
    """The tables every unit-explanation artifact stores (`neurons`, `features`)."""

    stats: pd.DataFrame        # unit, max, mean, density, n_fired
    contexts: pd.DataFrame     # unit, rank, activation, doc, pos, ref, token, tokens, acts, center
    hist: np.ndarray           # [unit, bins] counts
    hist_edges: np.ndarray     # [unit, bins + 1]
    by_token: pd.DataFrame     # token_id, token, count, rank, unit, mean_act
    n_tokens: int
    random_contexts: pd.DataFrame   # id, doc, pos, ref, token, tokens, center: contexts drawn uniformly (seeded)
    random_acts: np.ndarray         # [unit, random context] each unit's activation on their marked token

    def tables(self) -> dict[str, Any]:
        """The scan's fields by name (to build a `UnitTables` result from it)."""
        return {f.name: getattr(self, f.name) for f in fields(UnitScan)}


@dataclass(kw_only=True)
class UnitTables(UnitScan):
    """A unit-explanation artifact (`neurons`, `features`): the scan, where it came from, the logit effects."""

    corpus_id: str
    layer: int
    site: str                     # the hook name
    logits: pd.DataFrame          # unit, sign, rank, token_id, token, value
    explanations: pd.DataFrame | None = None   # unit, explanation, score, control_score, n_sim, judge


def _frequent_tokens(corpus: Corpus, min_count: int, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, counts) of up to `max_tokens` most frequent tokens seen at least `min_count` times."""
    counts: dict[int, int] = {}
    for _, arr in corpus.iter_shards(["tokens"]):
        ids, c = np.unique(arr["tokens"], return_counts=True)
        for i, n in zip(ids.tolist(), c.tolist()):
            counts[i] = counts.get(i, 0) + n
    items = sorted(((n, i) for i, n in counts.items() if n >= min_count), reverse=True)[:max_tokens]
    return np.array([i for _, i in items], dtype=np.int64), np.array([n for n, _ in items], dtype=np.int64)


def _encoded(x: np.ndarray, rows: np.ndarray, encode: Encode | None, chunk: int):
    """(rows of the chunk, units [m, n_units] float32) for the given rows of a shard's activations."""
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        xs = torch.from_numpy(x[r].astype(np.float32))
        with torch.no_grad():
            yield r, (encode(xs) if encode is not None else xs).float()


def _memo(token_strings: Callable[[list[int]], list[str]]) -> Callable[[list[int]], list[str]]:
    """token_strings with each id decoded once (contexts repeat tokens many thousand times)."""
    cache: dict[int, str] = {}

    def strings(ids: list[int]) -> list[str]:
        new = [i for i in dict.fromkeys(ids) if i not in cache]
        if new:
            cache.update(zip(new, token_strings(new)))
        return [cache[i] for i in ids]

    return strings


def _window(docs: np.ndarray, pos: np.ndarray, r: int, before: int, after: int) -> tuple[int, int]:
    """Rows [a, b) of the context around row r, inside its document (a document's rows are contiguous,
    in order, and its pos counts from its first row)."""
    return r - min(before, int(pos[r])), min(r + 1 + after, int(np.searchsorted(docs, docs[r], side="right")))


@torch.no_grad()
def scan(corpus: Corpus, hook: str, n_units: int, token_strings: Callable[[list[int]], list[str]], *,
         encode: Encode | None = None, top: int = 20, before: int = 12, after: int = 4, bins: int = 40,
         positive_hist: bool = False, skip_first: bool = False, max_norm: float | None = None,
         token_min_count: int = 5, max_tokens: int = 2000,
         tokens_per_token: int = 5, n_random: int = 20, seed: int = 0, chunk: int = 4096) -> UnitScan:
    """Statistics, top contexts, histograms and per-token means of every unit over the corpus (leaving out
    each document's position 0 if `skip_first`, and rows whose stored activation's norm exceeds `max_norm`)."""
    corpus.require(hook)
    if top < 1:
        raise InterpError(f"--top must be at least 1, got {top}")
    token_strings = _memo(token_strings)
    shards = corpus.shards()
    if not shards:
        raise InterpError(f"corpus {corpus.id} has no complete shards")
    tok_ids, _ = _frequent_tokens(corpus, token_min_count, max_tokens)
    lookup = {t: i for i, t in enumerate(tok_ids.tolist())}
    tok_sums = torch.zeros(len(tok_ids), n_units)
    tok_n = torch.zeros(len(tok_ids))
    mx = torch.full((n_units,), -torch.inf)
    mn = torch.full((n_units,), torch.inf)
    total = torch.zeros(n_units, dtype=torch.float64)
    fired = torch.zeros(n_units, dtype=torch.long)
    best_v = torch.full((0, n_units), -torch.inf)
    best_key = torch.zeros((0, n_units), dtype=torch.long)   # shard index * 2**32 + row
    eligible = []

    def rows_of(arr: dict[str, np.ndarray]) -> np.ndarray:
        keep = arr["pos"] > 0 if skip_first else np.ones(len(arr["pos"]), dtype=bool)
        if max_norm is not None:
            keep &= np.linalg.norm(arr[hook].astype(np.float32), axis=1) <= max_norm
        return np.nonzero(keep)[0]

    # pass 1: statistics, top keys, per-token sums
    for si, record in enumerate(shards):
        arr = corpus.read(record, ["tokens", "pos", hook])
        rows = rows_of(arr)
        eligible.append(len(rows))
        compact = torch.tensor([lookup.get(t, -1) for t in arr["tokens"].tolist()], dtype=torch.long)
        for r, u in _encoded(arr[hook], rows, encode, chunk):
            if u.shape[1] != n_units:
                raise InterpError(f"encoding gives {u.shape[1]} units, expected {n_units}")
            mx = torch.maximum(mx, u.max(0).values)
            mn = torch.minimum(mn, u.min(0).values)
            total += u.sum(0, dtype=torch.float64)
            fired += (u > 0).sum(0)
            cv, ci = u.topk(min(top, len(u)), dim=0)
            v = torch.cat([best_v, cv])
            k = torch.cat([best_key, (si << 32) + torch.from_numpy(r)[ci]])
            best_v, idx = v.topk(min(top, len(v)), dim=0)
            best_key = k.gather(0, idx)
            c = compact[torch.from_numpy(r)]
            keep = c >= 0
            tok_sums.index_add_(0, c[keep], u[keep])
            tok_n.index_add_(0, c[keep], torch.ones(int(keep.sum())))
    n_tokens = int(sum(eligible))
    if n_tokens == 0:
        raise InterpError(f"corpus {corpus.id} has no tokens to scan")
    # random contexts, uniformly over the scanned tokens (for judges' simulation and as a baseline)
    sizes = np.array(eligible)
    picks = np.sort(np.random.default_rng(seed).choice(n_tokens, size=min(n_random, n_tokens), replace=False))
    pick_shard = np.searchsorted(np.cumsum(sizes), picks, side="right")
    pick_k = picks - np.concatenate([[0], np.cumsum(sizes)])[pick_shard]
    random_rows: list[dict[str, Any]] = []
    random_acts = np.zeros((n_units, len(picks)), dtype=np.float32)
    # pass 2: histograms and context windows
    lo = torch.zeros(n_units) if positive_hist else mn
    hi = torch.where(mx > lo, mx, lo + 1e-6)
    edges = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, bins + 1)[None, :]
    hist = torch.zeros(n_units * bins, dtype=torch.long)
    ctx_rows: list[dict[str, Any]] = []
    units_idx = torch.arange(n_units)
    for si, record in enumerate(shards):
        arr = corpus.read(record, ["tokens", "doc", "pos", hook])
        rows = rows_of(arr)
        for _, u in _encoded(arr[hook], rows, encode, chunk):
            vals = u[u > 0] if positive_hist else u.flatten()
            which = (units_idx[None, :].expand_as(u)[u > 0] if positive_hist else units_idx.repeat(len(u)))
            b = ((vals - lo[which]) / (hi - lo)[which] * bins).long().clamp(0, bins - 1)
            hist += torch.bincount(which * bins + b, minlength=n_units * bins)
        docs, pos, toks = arr["doc"], arr["pos"], arr["tokens"]
        here = np.nonzero(pick_shard == si)[0]
        if len(here):
            picked = rows[pick_k[here]]
            random_acts[:, here] = next(_encoded(arr[hook], picked, encode, len(picked)))[1].numpy().T
            for j, r in zip(here.tolist(), picked.tolist()):
                a, b = _window(docs, pos, r, before, after)
                strs = token_strings(toks[a:b].tolist())
                random_rows.append({"id": j, "doc": int(docs[r]), "pos": int(pos[r]), "ref": _ref(record, int(docs[r])),
                                    "token": strs[r - a], "tokens": strs, "center": r - a})
        mine = (best_key >> 32) == si
        if not mine.any():
            continue
        ranks, units = mine.nonzero(as_tuple=True)
        top_rows = (best_key[ranks, units] & 0xFFFFFFFF).numpy()
        windows = [_window(docs, pos, int(r), before, after) for r in top_rows]
        need = np.unique(np.concatenate([np.arange(a, b) for a, b in windows]))
        enc = next(_encoded(arr[hook], need, encode, len(need)))[1]
        where = {int(r): i for i, r in enumerate(need)}
        for (a, b), r, rank, unit in zip(windows, top_rows.tolist(), ranks.tolist(), units.tolist()):
            strs = token_strings(toks[a:b].tolist())
            ctx_rows.append({"unit": unit, "rank": rank, "activation": float(best_v[rank, unit]),
                             "doc": int(docs[r]), "pos": int(pos[r]), "ref": _ref(record, int(docs[r])),
                             "token": strs[r - a], "tokens": strs,
                             "acts": [float(enc[where[j], unit]) for j in range(a, b)], "center": int(r - a)})
    contexts = pd.DataFrame(ctx_rows, columns=["unit", "rank", "activation", "doc", "pos", "ref", "token", "tokens",
                                               "acts", "center"])
    contexts = contexts.sort_values(["unit", "rank"], kind="stable").reset_index(drop=True)
    stats = pd.DataFrame({"unit": np.arange(n_units), "max": mx.numpy(), "min": mn.numpy(),
                          "mean": (total / n_tokens).float().numpy(),
                          "density": (fired.double() / n_tokens).numpy(), "n_fired": fired.numpy()})
    seen = tok_n > 0
    by_token = _by_token(tok_ids[seen.numpy()], tok_n[seen].long().numpy(), tok_sums[seen], token_strings,
                         tokens_per_token)
    return UnitScan(stats=stats, contexts=contexts, hist=hist.view(n_units, bins).numpy().astype(np.int64),
                    hist_edges=edges.numpy().astype(np.float32), by_token=by_token, n_tokens=n_tokens,
                    random_contexts=pd.DataFrame(random_rows, columns=["id", "doc", "pos", "ref", "token", "tokens",
                                                                       "center"]).sort_values("id").reset_index(drop=True),
                    random_acts=random_acts)


def _ref(record: dict[str, Any], doc: int) -> str:
    d = record.get("docs") or {}
    try:
        return str(d["ref"][d["doc"].index(doc)])
    except (KeyError, ValueError):
        return ""


def _by_token(tok_ids: np.ndarray, counts: np.ndarray, sums: torch.Tensor, token_strings: Callable[[list[int]], list[str]],
              k: int) -> pd.DataFrame:
    """For each frequent token, the `k` units with the highest mean activation on it."""
    cols = ["token_id", "token", "count", "rank", "unit", "mean_act"]
    if not len(tok_ids):
        return pd.DataFrame(columns=cols)
    means = sums / torch.from_numpy(counts).float()[:, None]
    v, u = means.topk(min(k, means.shape[1]), dim=1)
    strs = token_strings(tok_ids.tolist())
    rows = [{"token_id": int(t), "token": s, "count": int(c), "rank": r, "unit": int(u[i, r]), "mean_act": float(v[i, r])}
            for i, (t, s, c) in enumerate(zip(tok_ids, strs, counts)) for r in range(v.shape[1])]
    return pd.DataFrame(rows, columns=cols)


@torch.no_grad()
def logit_effects(model: Any, directions: torch.Tensor, k: int = 10, chunk: int = 256) -> pd.DataFrame:
    """unit, sign (promote/suppress), rank, token_id, token, value: the `k` tokens each output direction
    [n_units, d_model] raises and lowers most through the final norm's gain and the unembedding."""
    w_u = model.hf.get_output_embeddings().weight.detach().float()          # [vocab, d_model]
    norm = model.final_norm()
    gain = norm(torch.ones(1, w_u.shape[1], dtype=next(norm.parameters()).dtype)).float()[0]
    rows = []
    for s in range(0, len(directions), chunk):
        eff = (directions[s:s + chunk].float() * gain) @ w_u.T
        for sign, (v, i) in (("promote", eff.topk(k, dim=1)), ("suppress", (-eff).topk(k, dim=1))):
            for j in range(len(eff)):
                strs = model.token_strings(i[j].tolist())
                for r in range(k):
                    rows.append({"unit": s + j, "sign": sign, "rank": r, "token_id": int(i[j, r]), "token": strs[r],
                                 "value": float(v[j, r]) * (1 if sign == "promote" else -1)})
    return pd.DataFrame(rows, columns=["unit", "sign", "rank", "token_id", "token", "value"])


def neuron_directions(model: Any, layer: int) -> torch.Tensor:
    """The output direction of each MLP neuron of `layer` [d_mlp, d_model] (rows of TransformerLens' W_out)."""
    return model.bridge.blocks[layer].mlp.W_out.detach().float()


def unit_summary(scan_: UnitScan, units: list[int], n: int = 3) -> list[str]:
    """A line per unit: its max, density and the tokens of its top contexts."""
    lines = []
    for u in units:
        st = scan_.stats.iloc[u]
        ctx = scan_.contexts[scan_.contexts["unit"] == u].head(n)
        toks = ", ".join(repr(t) for t in ctx["token"])
        lines.append(f"  #{u:<6} max {st['max']:8.3f}  density {st['density']:.4f}  top tokens: {toks}")
    return lines


def top_tokens(r: Any, unit: int, n: int = 3) -> str:
    """The tokens of a unit's top `n` contexts, quoted."""
    ctx = r.contexts[r.contexts["unit"] == unit].head(n)
    return ", ".join(repr(t) for t in ctx["token"])


def search_units(r: Any, query: str | None, limit: int = 30) -> list[dict[str, Any]]:
    """Units of a `neurons` / `features` result matching a query: an id (`123` or `#123`), else a token (exact
    match on the stripped token, then containment) by the units' mean activation on it, then units whose top
    contexts end on it; no query: the strongest (neurons) or most frequent (features) units."""
    q = (query or "").strip()
    stats = r.stats.set_index("unit")
    found: list[tuple[int, str]] = []
    if q.lstrip("#").isdigit():
        found = [(int(q.lstrip("#")), "id")]
    elif q:
        bt = r.by_token
        norm = bt["token"].str.strip().str.lower()
        for mask in (norm == q.lower(), norm.str.contains(q.lower(), regex=False)):
            for x in bt[mask].sort_values("mean_act", ascending=False).itertuples():
                found.append((int(x.unit), f"fires on {x.token!r} (mean {x.mean_act:.3f} over {x.count})"))
        ctx = r.contexts[r.contexts["token"].str.strip().str.lower() == q.lower()]
        for u, n in ctx.groupby("unit").size().sort_values(ascending=False).items():
            found.append((int(u), f"{n} of its top contexts end on {q!r}"))
    else:
        order = "max" if r.meta.kind == "neurons" else "n_fired"
        found = [(int(u), "") for u in r.stats.sort_values(order, ascending=False)["unit"].head(limit)]
    rows, seen = [], set()
    for u, why in found:
        if u in seen or u not in stats.index:
            continue
        seen.add(u)
        st = stats.loc[u]
        rows.append({"unit": u, "why": why, "max": float(st["max"]), "density": float(st["density"]),
                     "top_tokens": top_tokens(r, u)})
        if len(rows) >= limit:
            break
    return rows


__all__ = ["UnitScan", "search_units", "top_tokens", "logit_effects", "neuron_directions", "scan", "unit_summary"]
