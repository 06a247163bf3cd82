"""Circuit discovery: score every edge (EAP, EAP-IG, exact), then measure the faithfulness of the top-K edges.

Scores estimate what removing one edge (giving it the corrupted prompt's value) does to the task metric,
averaged over the task's examples:
- `eap` (Syed et al. 2023): (out_U[corrupt] - out_U[clean]) . d metric / d x_S on the clean run: one clean
  and one corrupted forward, one backward, for every edge at once.
- `eap-ig` (Hanna et al. 2024, "EAP-IG-inputs"): the same difference times the gradient averaged over `steps`
  inputs interpolated between the corrupted and clean input embeddings (alpha = k / steps, k = 0..steps-1,
  as their reference code; the paper's default is 5 steps).
- `exact`: the metric change when the edge alone is removed in a real forward (one forward per edge).

Faithfulness is measured: keep the top-K edges by |score|, patch every other edge in a real forward, and
report (metric(circuit) - metric(corrupt)) / (metric(clean) - metric(corrupt)), on the mean metric over
examples. The graph, the patched forward and the gradients are `workbench.interp.edges`; the task data is
`workbench.interp.circuit_tasks`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import csv, int_at_least
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.circuit_tasks import TaskData, load_task
from workbench.interp.edges import EdgePatcher, Graph, edge_table, on_path
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.tools import Tool, arg, register_tool

THRESHOLD = 0.8
log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Examples of one batch, right-padded: clean/corrupt tokens, metric candidates, cached node outputs.

    Right padding is exact: attention is causal, so pad tokens after a prompt change nothing at its real
    positions, and the metric is read at each row's last real token (`last`).
    """

    rows: list[int]
    clean: torch.Tensor
    corrupt: torch.Tensor
    last: torch.Tensor          # [rows] position of each row's last real token
    ids: torch.Tensor           # [rows, k]
    weights: torch.Tensor       # [rows, k]
    space: str
    clean_out: torch.Tensor | None = None
    corrupt_out: torch.Tensor | None = None
    corrupt_resid: torch.Tensor | None = None
    clean_metric: torch.Tensor | None = None
    corrupt_metric: torch.Tensor | None = None

    def metric(self, logits: torch.Tensor, repeat: int = 1) -> torch.Tensor:
        """Metric per row from logits [repeat * rows, pos, vocab] (rows tiled `repeat` times)."""
        last = logits[torch.arange(logits.shape[0]), self.last.repeat(repeat), :].float()
        values = torch.softmax(last, dim=-1) if self.space == "prob_diff" else last
        ids, w = self.ids.repeat(repeat, 1), self.weights.repeat(repeat, 1)
        return (values.gather(1, ids) * w).sum(-1)


def make_batches(model: HookedModel, data: TaskData, batch_size: int) -> list[Batch]:
    """Examples sorted by token length, `batch_size` per batch, right-padded to the batch's longest."""
    items = []
    for i, ex in enumerate(data.examples):
        c, k = model.tokenize(ex.clean)[0].tolist(), model.tokenize(ex.corrupt)[0].tolist()
        if len(c) != len(k):
            raise InterpError(f"{data.name} example {i + 1}: clean and corrupted prompts tokenise to different "
                              f"lengths ({len(c)} vs {len(k)} tokens); positions must line up")
        items.append((len(c), i, c, k))
    items.sort()
    pad = model.tokenizer.pad_token_id
    pad = int(pad if pad is not None else model.tokenizer.eos_token_id or 0)
    batches = []
    for s in range(0, len(items), batch_size):
        chunk = items[s:s + batch_size]
        width = max(n for n, *_ in chunk)
        rows = [i for _, i, _, _ in chunk]
        k = max(len(data.examples[i].ids) for i in rows)
        ids = torch.zeros(len(rows), k, dtype=torch.long)
        w = torch.zeros(len(rows), k)
        for j, i in enumerate(rows):
            ex = data.examples[i]
            ids[j, :len(ex.ids)] = torch.tensor(ex.ids)
            w[j, :len(ex.weights)] = torch.tensor(ex.weights)
        batches.append(Batch(rows, torch.tensor([c + [pad] * (width - n) for n, _, c, _ in chunk]),
                             torch.tensor([x + [pad] * (width - n) for n, _, _, x in chunk]),
                             torch.tensor([n - 1 for n, *_ in chunk]), ids, w, data.metric))
    return batches


def cache_batches(patcher: EdgePatcher, batches: Sequence[Batch]) -> None:
    """Each batch's clean and corrupted node outputs and metrics."""
    for b in batches:
        logits, b.clean_out = patcher.node_outputs(b.clean)
        b.clean_metric = b.metric(logits)
        logits, b.corrupt_out = patcher.node_outputs(b.corrupt)
        b.corrupt_metric = b.metric(logits)
        b.corrupt_resid = patcher.corrupt_residuals(b.corrupt_out)


def _n(batches: Sequence[Batch]) -> int:
    return sum(len(b.rows) for b in batches)


# ---- scoring methods ------------------------------------------------------------------------------
def eap_ig_scores(patcher: EdgePatcher, batches: Sequence[Batch], steps: int) -> torch.Tensor:
    """Mean over examples of diff . gradient, the gradient averaged over `steps` interpolated inputs."""
    total = torch.zeros(patcher.graph.n_up, patcher.graph.n_slots)
    for b in batches:
        diff = b.corrupt_out - b.clean_out
        c_in, k_in = b.clean_out[:, :, 0], b.corrupt_out[:, :, 0]
        for k in range(steps):
            embed = k_in + (k / steps) * (c_in - k_in)
            total += patcher.slot_scores(b.clean, diff, b.metric, embed=embed)[0]
    return total / (_n(batches) * steps)


def eap_scores(patcher: EdgePatcher, batches: Sequence[Batch], steps: int = 0) -> torch.Tensor:
    """Mean over examples of (out_U[corrupt] - out_U[clean]) . d metric / d x_S on the clean run."""
    total = torch.zeros(patcher.graph.n_up, patcher.graph.n_slots)
    for b in batches:
        total += patcher.slot_scores(b.clean, b.corrupt_out - b.clean_out, b.metric)[0]
    return total / _n(batches)


def exact_edges(patcher: EdgePatcher, batches: Sequence[Batch], up: Sequence[int], slot: Sequence[int],
                *, edges_per_forward: int = 8) -> np.ndarray:
    """Mean metric change when each edge (up[i] -> slot[i]) alone is removed, batched over edges."""
    g = patcher.graph
    sums = np.zeros(len(up))
    for b in batches:
        n_rows = len(b.rows)
        for s in range(0, len(up), edges_per_forward):
            chunk = list(range(s, min(s + edges_per_forward, len(up))))
            removed = torch.zeros(len(chunk) * n_rows, g.n_up, g.n_slots, dtype=torch.bool)
            for j, e in enumerate(chunk):
                removed[j * n_rows:(j + 1) * n_rows, up[e], slot[e]] = True
            tokens = b.clean.repeat(len(chunk), 1)
            logits = patcher.run(tokens, b.corrupt_out, removed, torch.arange(n_rows).repeat(len(chunk)), b.corrupt_resid)
            values = b.metric(logits, repeat=len(chunk)).view(len(chunk), n_rows)
            sums[chunk] += (values - b.clean_metric[None, :]).sum(1).numpy()
    return sums / _n(batches)


def exact_scores(patcher: EdgePatcher, batches: Sequence[Batch], steps: int = 0) -> torch.Tensor:
    """Exact edge patching of every edge: one forward per edge (and batch)."""
    u, s = patcher.graph.allowed().nonzero(as_tuple=True)
    out = torch.zeros(patcher.graph.n_up, patcher.graph.n_slots)
    out[u, s] = torch.as_tensor(exact_edges(patcher, batches, u.tolist(), s.tolist()), dtype=torch.float32)
    return out


METHODS: dict[str, Callable[[EdgePatcher, Sequence[Batch], int], torch.Tensor]] = {
    "eap": eap_scores, "eap-ig": eap_ig_scores, "exact": exact_scores}


# ---- faithfulness ---------------------------------------------------------------------------------
def circuit_metric(patcher: EdgePatcher, batches: Sequence[Batch], kept: torch.Tensor) -> float:
    """Mean metric over examples with every edge outside `kept` [n_up, n_slots] patched."""
    removed = patcher.graph.allowed() & ~kept
    total = 0.0
    for b in batches:
        logits = patcher.run(b.clean, b.corrupt_out, removed.expand(len(b.rows), -1, -1), corrupt_resid=b.corrupt_resid)
        total += float(b.metric(logits).sum())
    return total / _n(batches)


def top_k(graph: Graph, scores: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` edges of largest |score| (ties: lower edge index first) as a kept mask."""
    u, s = graph.allowed().nonzero(as_tuple=True)
    order = np.argsort(-np.abs(scores[u, s].numpy()), kind="stable")[:k]
    kept = torch.zeros(graph.n_up, graph.n_slots, dtype=torch.bool)
    kept[u[order], s[order]] = True
    return kept


def default_sweep(n_edges: int) -> list[int]:
    ks = [0] + [k for k in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000) if k < n_edges]
    return ks + [n_edges]


def sweep(patcher: EdgePatcher, batches: Sequence[Batch], scores: torch.Tensor, ks: Sequence[int], threshold: float,
          faith: Callable[[float], float]) -> tuple[dict[int, float], int | None]:
    """Faithfulness at each K of `ks`, then bisection for the smallest K reaching `threshold`.

    Bisection runs between the last sweep point below the threshold and the first at or above it, to 2%
    of K; faithfulness need not be monotone in K, so this is the smallest K found, not a proven minimum.
    """
    seen: dict[int, float] = {}

    def at(k: int) -> float:
        if k not in seen:
            seen[k] = faith(circuit_metric(patcher, batches, top_k(patcher.graph, scores, k)))
        return seen[k]

    for k in ks:
        at(k)
    first = next((k for k in ks if seen[k] >= threshold), None)
    if first is None:
        return seen, None
    lo, hi = max([k for k in ks if k < first], default=0), first
    while hi - lo > 1 and (hi - lo) / hi > 0.02:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if at(mid) >= threshold else (mid, hi)
    return seen, hi


def heads_of(graph: Graph, kept: torch.Tensor) -> list[str]:
    """Heads (`L{layer}H{head}`) with a kept edge on an input -> logits path, in or out."""
    path = on_path(graph, kept)
    used_up = path.any(dim=1)
    nodes = {int(u) for u in used_up.nonzero().flatten()}
    for s in path.any(dim=0).nonzero().flatten().tolist():
        nodes.update(graph.slot_nodes()[s])
    out = []
    for l in range(graph.n_layers):
        out += [f"L{l}H{h}" for h in range(graph.n_heads) if graph.head(l, h) in nodes]
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@register_kind("circuit")
@dataclass
class CircuitResult:
    meta: Meta
    task: str
    metric: str
    n: int
    methods: list[str]
    graph: dict[str, int]                 # n_layers, n_heads, n_kv, n_edges
    clean_metric: float
    corrupt_metric: float
    threshold: float
    smallest: dict[str, dict[str, Any]]   # method -> {k, faithfulness, edges_on_path, heads} (None: never reached)
    rank_correlation: dict[str, dict[str, float]]  # method -> Spearman with exact: uniform sample, all sampled
    timings: dict[str, float]
    edges: pd.DataFrame                   # one row per edge: names, layers, score per method, exact (sampled)
    faithfulness: pd.DataFrame            # method, k, edges_on_path, metric, faithfulness
    examples: pd.DataFrame                # clean, corrupt, answer, wrong, clean_metric, corrupt_metric
    notes: dict[str, Any] = field(default_factory=dict)

    def curve(self, method: str) -> pd.DataFrame:
        return self.faithfulness[self.faithfulness["method"] == method].sort_values("k")

    def kept(self, method: str, k: int) -> pd.DataFrame:
        """The top-`k` edges by |score| of `method`."""
        order = np.argsort(-np.abs(self.edges[method].to_numpy()), kind="stable")[:k]
        return self.edges.iloc[order]

    def circuit_edges(self, method: str, k: int, *, prune: bool = True) -> pd.DataFrame:
        """The top-`k` edges of `method`; with `prune`, only those on an input -> logits path (same faithfulness)."""
        top = self.kept(method, k)
        if not prune or top.empty:
            return top
        g = Graph(self.graph["n_layers"], self.graph["n_heads"], self.graph["n_kv"])
        u = torch.tensor(top["up_index"].to_numpy(dtype=np.int64))
        s = torch.tensor(top["slot_index"].to_numpy(dtype=np.int64))
        kept = torch.zeros(g.n_up, g.n_slots, dtype=torch.bool)
        kept[u, s] = True
        return top[on_path(g, kept)[u, s].numpy()]

    def summary(self) -> str:
        lines = [f"task {self.task} (n={self.n}, metric {self.metric}): clean {self.clean_metric:.4f}, "
                 f"corrupted {self.corrupt_metric:.4f}; {self.graph['n_edges']} edges"]
        for m in self.methods:
            c = self.curve(m)
            lines.append(f"{m:<7} faithfulness by K: " + ", ".join(f"{int(k)}:{f:.2f}" for k, f in
                                                                  zip(c["k"], c["faithfulness"])))
            s = self.smallest.get(m)
            if s:
                lines.append(f"        smallest >= {self.threshold:.0%}: K={s['k']} ({s['edges_on_path']} edges on "
                             f"input->logit paths), faithfulness {s['faithfulness']:.3f}; heads "
                             f"{', '.join(s['heads'][:20])}{' ...' if len(s['heads']) > 20 else ''}")
            r = self.rank_correlation.get(m)
            if r:
                lines.append(f"        Spearman with exact edge patching: {r['uniform']:.3f} on {int(r['n_uniform'])} "
                             f"random edges, {r['all']:.3f} on all {int(r['n'])} sampled")
        return "\n".join(lines)


def run(model: HookedModel, task: str | TaskData = "ioi", *, n: int = 20, methods: Sequence[str] = ("eap", "eap-ig"),
            top_edges: Sequence[int] | None = None, ig_steps: int = 5, exact_sample: int = 50, seed: int = 0,
            batch_size: int = 16, threshold: float = THRESHOLD, source: dict[str, Any] | None = None) -> CircuitResult:
    """Score every edge with `methods`, sweep faithfulness over `top_edges`, compare with exact on a sample."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InterpError(f"unknown circuit method {unknown[0] if unknown else ''!r}: use {', '.join(METHODS)}")
    patcher = EdgePatcher(model)
    g = patcher.graph
    n_edges = g.n_edges
    ks = sorted(set(top_edges)) if top_edges else default_sweep(n_edges)
    too_big = [k for k in ks if k > n_edges]
    if too_big:
        raise InterpError(f"--top-edges {too_big[0]} is more than the {n_edges} edges of {model.spec}'s graph")
    data = load_task(task, model, n, seed) if isinstance(task, str) else task
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    batches = make_batches(model, data, batch_size)
    cache_batches(patcher, batches)
    N = _n(batches)
    clean_m = float(sum(float(b.clean_metric.sum()) for b in batches) / N)
    corrupt_m = float(sum(float(b.corrupt_metric.sum()) for b in batches) / N)
    if abs(clean_m - corrupt_m) < 1e-6:
        raise InterpError(f"clean and corrupted prompts give the same mean metric ({clean_m:.4g}): "
                          "faithfulness is undefined for this task")
    timings["cache_s"] = time.perf_counter() - t0

    scores: dict[str, torch.Tensor] = {}
    for m in methods:
        t = time.perf_counter()
        scores[m] = METHODS[m](patcher, batches, ig_steps)
        timings[f"{m}_s"] = time.perf_counter() - t
        log.info("scored %d edges with %s (%.0f s)", n_edges, m, timings[f"{m}_s"])
    table = edge_table(g, scores)

    def faith(value: float) -> float:
        return (value - corrupt_m) / (clean_m - corrupt_m)

    rows, smallest = [], {}
    for m in methods:
        t = time.perf_counter()
        seen, best = sweep(patcher, batches, scores[m], ks, threshold, faith)
        if best is not None:
            kept = top_k(g, scores[m], best)
            smallest[m] = {"k": best, "faithfulness": seen[best], "edges_on_path": int(on_path(g, kept).sum()),
                           "heads": heads_of(g, kept)}
        for k, f in sorted(seen.items()):
            rows.append({"method": m, "k": k, "edges_on_path": int(on_path(g, top_k(g, scores[m], k)).sum()),
                         "metric": f * (clean_m - corrupt_m) + corrupt_m, "faithfulness": f, "sweep": k in ks})
        timings[f"{m}_faithfulness_s"] = time.perf_counter() - t
        log.info("%s faithfulness at %d circuit sizes (%.0f s)", m, len(seen), timings[f"{m}_faithfulness_s"])

    corr: dict[str, dict[str, float]] = {}
    if "exact" in methods:  # every edge has its exact score: correlate over all of them
        for m in methods:
            if m != "exact":
                rho = _spearman(table[m].to_numpy(), table["exact"].to_numpy())
                corr[m] = {"uniform": rho, "all": rho, "n_uniform": float(len(table)), "n": float(len(table))}
    else:
        table["exact"] = np.nan
        table["exact_sample"] = ""
    if exact_sample and "exact" not in methods:
        t = time.perf_counter()
        rng = np.random.default_rng(seed)
        uniform = rng.choice(len(table), size=min(max(1, exact_sample // 2), len(table)), replace=False)
        taken = set(uniform.tolist())
        top = [i for i in np.argsort(-np.abs(table[methods[0]].to_numpy()), kind="stable") if i not in taken]
        top = np.asarray(top[: exact_sample - len(uniform)], dtype=int)
        picked = np.concatenate([uniform, top])
        values = exact_edges(patcher, batches, table["up_index"].to_numpy()[picked].tolist(),
                             table["slot_index"].to_numpy()[picked].tolist())
        table.loc[table.index[picked], "exact"] = values
        table.loc[table.index[uniform], "exact_sample"] = "uniform"
        table.loc[table.index[top], "exact_sample"] = f"top_{methods[0]}"
        for m in methods:
            corr[m] = {"uniform": _spearman(table[m].to_numpy()[uniform], values[:len(uniform)]),
                       "all": _spearman(table[m].to_numpy()[picked], values),
                       "n_uniform": float(len(uniform)), "n": float(len(picked))}
        timings["exact_sample_s"] = time.perf_counter() - t

    ex_rows = []
    for b in batches:
        for j, i in enumerate(b.rows):
            ex = data.examples[i]
            ex_rows.append({"index": i, "clean": ex.clean, "corrupt": ex.corrupt, "answer": ex.answer, "wrong": ex.wrong,
                            "clean_metric": float(b.clean_metric[j]), "corrupt_metric": float(b.corrupt_metric[j])})
    examples = pd.DataFrame(ex_rows).sort_values("index").reset_index(drop=True)
    meta = make_meta("circuit", model, [ex.clean for ex in data.examples[:4]],
                     [model.tokenize(ex.clean)[0].tolist() for ex in data.examples[:4]],
                     {"task": data.name, "n": N, "seed": seed, "methods": list(methods), "top_edges": ks,
                      "ig_steps": ig_steps, "exact_sample": exact_sample, "batch_size": batch_size,
                      "threshold": threshold, "task_params": data.params,
                      "kv": "grouped: an edge into k/v feeds one KV head, shared by its group's query heads"}, source)
    return CircuitResult(meta=meta, task=data.name, metric=data.metric, n=N, methods=list(methods),
                         graph={"n_layers": g.n_layers, "n_heads": g.n_heads, "n_kv": g.n_kv, "n_edges": n_edges},
                         clean_metric=clean_m, corrupt_metric=corrupt_m, threshold=threshold, smallest=smallest,
                         rank_correlation=corr, timings=timings, edges=table, faithfulness=pd.DataFrame(rows),
                         examples=examples)


TOOL = register_tool(Tool(
    name="circuit", run=run, prompt="none",
    help="circuit discovery: every edge of the head/MLP graph scored by EAP, EAP-IG or exact edge patching on a "
         "task (ioi, greater_than or a JSONL of {clean, corrupt, answer, wrong}); the faithfulness of the top-K "
         "edges measured by patching all other edges, the smallest circuit reaching 80%, and the rank correlation "
         "of the estimates with exact patching on sampled edges",
    args=(arg("--task", default="ioi", help="ioi, greater_than, or a JSONL file of {clean, corrupt, answer, wrong}"),
          arg("--n", type=int_at_least(1), default=20, help="examples (default 20)"),
          arg("--method", type=csv, default=["eap", "eap-ig"],
              help="scoring methods, comma-separated: eap, eap-ig, exact (exact: one forward per edge; default eap,eap-ig)"),
          arg("--top-edges", type=int_at_least(0), nargs="+", metavar="K",
              help="circuit sizes for the faithfulness curve (default 0, 10, 20, 50, ... all edges)"),
          arg("--ig-steps", type=int_at_least(1), default=5, help="EAP-IG interpolation steps (default 5, as the paper)"),
          arg("--exact-sample", type=int_at_least(0), default=50,
              help="edges scored by exact patching for the rank correlation: half random, half the top ones (default 50)"),
          arg("--seed", type=int, default=0, help="task generation and edge sampling seed (default 0)"),
          arg("--batch-size", type=int_at_least(1), default=16, help="examples per forward (default 16)")),
    from_cli=lambda a, p, m: dict(task=a.task, n=a.n, methods=a.method, top_edges=a.top_edges, ig_steps=a.ig_steps,
                                  exact_sample=a.exact_sample, seed=a.seed, batch_size=a.batch_size),
))
