"""Activation patching (clean -> corrupted) and attribution patching (its first-order approximation).

Exact patching runs the corrupted prompt with one site's activation replaced by the clean run's and
records the metric. Sweeps are batched: each batch row patches a different cell, so a chunk of
`batch_size` cells costs one forward. Attribution patching (AtP) estimates every cell at once from one
clean cache and one corrupted forward+backward: effect ~= (a_clean - a_corrupt) . d metric / d a.

Effects are normalised as (metric_patched - metric_corrupt) / (metric_clean - metric_corrupt): 1 means
the site restores the clean behaviour, 0 that it does nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.argtypes import csv, int_at_least
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, act_name
from workbench.interp.tools import Tool, arg, register_tool


# ---- metrics (a registry) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """A scalar per batch row from final-position logits."""

    name: str
    answer: int
    wrong: int | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return METRICS[self.name](logits[:, -1, :].float(), self)


METRICS: dict[str, Callable[[torch.Tensor, Metric], torch.Tensor]] = {
    "logit_diff": lambda last, m: last[:, m.answer] - last[:, m.wrong],
    "prob": lambda last, m: torch.softmax(last, dim=-1)[:, m.answer],
    "logprob": lambda last, m: torch.log_softmax(last, dim=-1)[:, m.answer],
}


def make_metric(model: HookedModel, name: str, answer: str, wrong: str | None = None) -> Metric:
    if name not in METRICS:
        raise InterpError(f"unknown metric {name!r}: use one of {', '.join(METRICS)}")
    if name == "logit_diff" and wrong is None:
        raise InterpError("the logit_diff metric needs a wrong answer token (--wrong)")
    return Metric(name, model.single_token(answer), model.single_token(wrong) if wrong is not None else None)


# ---- site families (a registry) ---------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """A grid of patch sites: one hook per layer, split by position, by head, or whole."""

    name: str
    act: str             # TransformerLens activation name (get_act_name)
    split: str           # "position" | "head" | "whole"

    def hook_name(self, layer: int) -> str:
        return act_name(self.act, layer)

    def shape(self, model: HookedModel, n_pos: int) -> tuple[int, ...]:
        extra = {"position": (n_pos,), "head": (model.n_heads,), "whole": ()}[self.split]
        return (model.n_layers, *extra)

    def cells(self, model: HookedModel, n_pos: int) -> list[tuple[str, tuple]]:
        """(hook name, index into one row's activation) for each cell, in grid (row-major) order."""
        out = []
        for layer in range(model.n_layers):
            name = self.hook_name(layer)
            if self.split == "position":
                out += [(name, (p,)) for p in range(n_pos)]
            elif self.split == "head":  # hook_z is [pos, head, d_head]
                out += [(name, (slice(None), h)) for h in range(model.n_heads)]
            else:
                out.append((name, ()))
        return out

    def reduce(self, contrib: torch.Tensor) -> torch.Tensor:
        """Sum an elementwise (delta * grad) of one row down to this family's cells of one layer."""
        if self.split == "position":
            return contrib.sum(dim=-1)
        if self.split == "head":
            return contrib.sum(dim=(0, 2))
        return contrib.sum()


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("resid_pre", "resid_pre", "position"),
    Family("attn_out", "attn_out", "whole"),
    Family("mlp_out", "mlp_out", "whole"),
    Family("head", "z", "head"),
)}


@register_kind("patching")
@dataclass
class PatchingResult:
    meta: Meta
    metric: str
    clean_metric: float
    corrupt_metric: float
    families: list[str]
    correlation: dict[str, float]       # family -> Pearson r of AtP vs exact effects (and "all")
    # Patched metric per cell: exact_<family> from patching, atp_<family> the AtP estimate (None: not run).
    exact_resid_pre: np.ndarray | None = None   # [layer, position]
    exact_attn_out: np.ndarray | None = None    # [layer]
    exact_mlp_out: np.ndarray | None = None     # [layer]
    exact_head: np.ndarray | None = None        # [layer, head]
    atp_resid_pre: np.ndarray | None = None
    atp_attn_out: np.ndarray | None = None
    atp_mlp_out: np.ndarray | None = None
    atp_head: np.ndarray | None = None

    def grid(self, family: str, which: str = "exact") -> np.ndarray:
        """Patched metric per cell of `family` (`which`: exact or atp)."""
        value = getattr(self, f"{which}_{family}", None)
        if value is None:
            raise InterpError(f"this patching artifact has no {which} grid for {family!r}")
        return np.asarray(value, dtype=float)

    def effect(self, family: str, which: str = "exact") -> np.ndarray:
        """Normalised effect grid: 1 = restores the clean metric, 0 = no change from corrupted."""
        return (self.grid(family, which) - self.corrupt_metric) / (self.clean_metric - self.corrupt_metric)

    def summary(self) -> str:
        lines = [f"metric {self.metric}: clean {self.clean_metric:.4f}, corrupted {self.corrupt_metric:.4f}"]
        for f in self.families:
            e = self.effect(f)
            idx = np.unravel_index(np.nanargmax(np.abs(e)), e.shape)
            lines.append(f"{f:<10} grid {e.shape}: strongest cell {tuple(int(i) for i in idx)} effect {e[idx]:+.3f}"
                         + (f"; AtP vs exact r = {self.correlation[f]:.3f}" if f in self.correlation else ""))
        return "\n".join(lines)


def _check_pair(model: HookedModel, clean: torch.Tensor, corrupt: torch.Tensor) -> None:
    if clean.shape != corrupt.shape:
        raise InterpError(f"clean and corrupted prompts must have the same number of tokens "
                          f"({clean.shape[-1]} vs {corrupt.shape[-1]}) so positions line up")


def _all_names(model: HookedModel, families: Sequence[Family]) -> list[str]:
    return [f.hook_name(l) for f in families for l in range(model.n_layers)]


@torch.no_grad()
def exact_patch(model: HookedModel, clean: torch.Tensor, corrupt: torch.Tensor, metric: Metric,
                family: Family, *, batch_size: int = 32,
                clean_cache: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """Patched metric for every cell of `family` (grid shape); `batch_size` cells per forward.

    A cell at layer L changes nothing before block L, so its row starts at block L from the corrupted run's
    residual stream there: a chunk of cells (in layer order) runs from its first cell's block, each row
    joining the batch at its own block, and only the last position is unembedded.
    """
    _check_pair(model, clean, corrupt)
    n_pos = clean.shape[-1]
    if clean_cache is None:
        _, clean_cache = model.run_with_cache(clean, _all_names(model, [family]), need_logits=False)
    base = model.block_inputs(corrupt)
    cells = family.cells(model, n_pos)
    per_layer = len(cells) // model.n_layers
    values: list[torch.Tensor] = []
    for start in range(0, len(cells), batch_size):
        chunk = cells[start:start + batch_size]
        joins = [(start + row) // per_layer for row in range(len(chunk))]  # the block each row starts at
        hooks = _patch_hooks(chunk, clean_cache)
        resid: torch.Tensor | None = None
        with model.hooks(hooks):
            for layer in range(joins[0], model.n_layers):
                new = joins.count(layer)
                if new:
                    rows = base[layer].resid.expand(new, n_pos, -1)
                    resid = rows if resid is None else torch.cat([resid, rows])
                resid = model.run_block(layer, resid, base[layer])
        values.append(metric(model.unembed(resid[:, -1:])))
    return torch.cat(values).reshape(family.shape(model, n_pos)).numpy()


@torch.no_grad()
def exact_patch_naive(model: HookedModel, clean: torch.Tensor, corrupt: torch.Tensor, metric: Metric,
                      family: Family, *, clean_cache: dict[str, torch.Tensor] | None = None) -> np.ndarray:
    """The textbook sweep exact_patch must equal: one full hooked forward of the corrupted prompt per cell."""
    _check_pair(model, clean, corrupt)
    n_pos = clean.shape[-1]
    if clean_cache is None:
        _, clean_cache = model.run_with_cache(clean, _all_names(model, [family]), need_logits=False)
    values = [metric(model.run_with_hooks(corrupt, _patch_hooks([cell], clean_cache)))
              for cell in family.cells(model, n_pos)]
    return torch.cat(values).reshape(family.shape(model, n_pos)).numpy()


def _patch_hooks(cells: Sequence[tuple[str, tuple]], clean_cache: dict[str, torch.Tensor]) -> list[tuple[str, Any]]:
    """Hooks patching batch row i with the clean activation of cells[i]."""
    by_name: dict[str, list[tuple[int, tuple]]] = {}
    for row, (name, idx) in enumerate(cells):
        by_name.setdefault(name, []).append((row, idx))
    return [(name, _patch_hook(rows, clean_cache[name][0])) for name, rows in by_name.items()]


def _patch_hook(rows: list[tuple[int, tuple]], source: torch.Tensor):
    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        for row, idx in rows:
            act[(row, *idx)] = source[idx]
        return act

    return hook


def attribution_patch(model: HookedModel, clean: torch.Tensor, corrupt: torch.Tensor, metric: Metric,
                      families: Sequence[Family]) -> dict[str, np.ndarray]:
    """AtP estimates of the patched metric (corrupt metric + delta . grad) for every cell of each family."""
    _check_pair(model, clean, corrupt)
    names = _all_names(model, families)
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names, need_logits=False)
    acts: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act.retain_grad()
        acts[hook.name] = act
        return act

    with torch.enable_grad():
        base = metric(model.run_with_hooks(corrupt, [(n, keep) for n in names]))
        base.sum().backward()
    # hook.name is the bridge's canonical spelling; map it back to the names asked for.
    canonical = {model.bridge.hook_dict[n].name: n for n in names}
    acts = {canonical.get(k, k): v for k, v in acts.items()}
    out = {}
    for fam in families:
        layers = []
        for l in range(model.n_layers):
            name = fam.hook_name(l)
            a = acts[name]
            if a.grad is None:
                raise InterpError(f"no gradient reached {name}; attribution patching cannot use this site")
            layers.append(fam.reduce(((clean_cache[name] - a.detach()) * a.grad)[0]))
        out[fam.name] = (base.detach()[0] + torch.stack(layers)).numpy()
    model.hf.zero_grad(set_to_none=True)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def run(model: HookedModel, clean_prompt: str, corrupt_prompt: str, *, answer: str, wrong: str | None = None,
          metric: str = "logit_diff", families: Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "head"),
          batch_size: int = 32, atp: bool = True, source: dict[str, Any] | None = None) -> PatchingResult:
    """Exact patching sweeps over `families` (batched), plus AtP and its correlation with exact."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise InterpError(f"unknown patch site family {unknown[0]!r}: use {', '.join(FAMILIES)}")
    fams = [FAMILIES[f] for f in families]
    m = make_metric(model, metric, answer, wrong)
    clean = model.tokenize(clean_prompt)
    corrupt = model.tokenize(corrupt_prompt)
    _check_pair(model, clean, corrupt)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean, _all_names(model, fams))
        clean_metric = float(m(clean_logits)[0])
        corrupt_metric = float(m(model.logits(corrupt))[0])
    exact = {f.name: exact_patch(model, clean, corrupt, m, f, batch_size=batch_size, clean_cache=clean_cache)
             for f in fams}
    estimates = attribution_patch(model, clean, corrupt, m, fams) if atp else {}
    denom = clean_metric - corrupt_metric
    corr = {f: _pearson((exact[f] - corrupt_metric) / denom, (estimates[f] - corrupt_metric) / denom) for f in estimates}
    if estimates:
        corr["all"] = _pearson(np.concatenate([np.ravel(exact[f]) for f in estimates]),
                               np.concatenate([np.ravel(estimates[f]) for f in estimates]))
    meta = make_meta("patching", model, [clean_prompt, corrupt_prompt], torch.cat([clean, corrupt]),
                     {"metric": metric, "answer": answer, "wrong": wrong, "answer_id": m.answer, "wrong_id": m.wrong,
                      "families": list(families), "batch_size": batch_size, "atp": atp}, source)
    return PatchingResult(meta=meta, metric=metric, clean_metric=clean_metric, corrupt_metric=corrupt_metric,
                          families=list(families), correlation=corr,
                          **{f"exact_{k}": v.astype(np.float32) for k, v in exact.items()},
                          **{f"atp_{k}": v.astype(np.float32) for k, v in estimates.items()})


def _from_cli(a: Any, p: Any, model: Any) -> dict[str, Any]:
    gold = p.sample.target_text if p.sample else None
    answer = a.answer if a.answer is not None else gold
    if not answer:
        raise InterpError("--answer is required (the token the clean prompt should predict)")
    wrong = a.wrong
    predicted = p.sample.predicted_text if p.sample else None
    if wrong is None and predicted is not None and predicted != answer:
        wrong = predicted  # a missed item: gold vs what the model chose
    return dict(clean_prompt=p.text, corrupt_prompt=a.corrupt, answer=answer, wrong=wrong, metric=a.metric,
                families=a.sites, batch_size=a.batch_size, atp=not a.no_atp)


TOOL = register_tool(Tool(
    name="patching", run=run, aliases=("patch",),
    help="activation patching clean -> corrupted (residual stream by layer x position, attention and MLP outputs "
         "by layer, heads), plus attribution patching and its correlation with exact patching",
    args=(arg("--corrupt", required=True, help="corrupted prompt (same token length as the clean one)"),
          arg("--answer", help="answer token (default: the sample's target text)"),
          arg("--wrong", help="wrong-answer token for logit_diff (default: a missed sample's predicted choice)"),
          arg("--metric", default="logit_diff", choices=["logit_diff", "prob", "logprob"]),
          arg("--sites", type=csv, default=["resid_pre", "attn_out", "mlp_out", "head"],
              help="site families (default: resid_pre,attn_out,mlp_out,head)"),
          arg("--batch-size", type=int_at_least(1), default=32, help="patched cells per forward (default 32)"),
          arg("--no-atp", action="store_true", help="skip attribution patching")),
    from_cli=_from_cli,
))
