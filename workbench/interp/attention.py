"""Attention patterns per layer/head for a prompt, and head scores on repeated random tokens.

Head scores (each a mean attention weight in [0, 1]) on sequences `[prefix] r_1..r_n r_1..r_n` of
random non-special tokens:
  previous_token   query i -> key i-1, over all non-prefix queries
  induction        query i in the repeat -> key i-n+1 (the token after the earlier copy of the current one)
  duplicate_token  query i in the repeat -> key i-n (the earlier copy of the current token)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import int_at_least, ints, rng_seed
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.tools import Tool, arg, register_tool

INDUCTION_THRESHOLD = 0.5


@register_kind("attention")
@dataclass
class AttentionResult:
    meta: Meta
    patterns: np.ndarray        # [n_layers_kept, head, query, key] on the prompt
    layers: list[int]           # the layer of each row of `patterns`
    head_scores: pd.DataFrame   # layer, head, previous_token, induction, duplicate_token
    induction_heads: list[list[float]]  # [layer, head, score] with induction score > INDUCTION_THRESHOLD

    def summary(self) -> str:
        top = self.head_scores.sort_values("induction", ascending=False).head(5)
        lines = [f"patterns {tuple(self.patterns.shape)} for layers {self.layers[0]}..{self.layers[-1]}",
                 f"induction heads (score > {INDUCTION_THRESHOLD}): "
                 + (", ".join(f"L{int(l)}H{int(h)} {s:.2f}" for l, h, s in self.induction_heads) or "none"),
                 "top induction scores: " + ", ".join(f"L{r.layer}H{r.head} {r.induction:.2f}" for r in top.itertuples())]
        return "\n".join(lines)


def pattern_names(layers: list[int]) -> list[str]:
    return [f"blocks.{l}.attn.hook_pattern" for l in layers]


@torch.no_grad()
def patterns(model: HookedModel, tokens: torch.Tensor, layers: list[int]) -> np.ndarray:
    """Attention patterns [len(layers), batch, head, query, key] (only those layers cached)."""
    _, cache = model.run_with_cache(tokens, pattern_names(layers), need_logits=False)
    return np.stack([cache[n].float().numpy() for n in pattern_names(layers)])


def repeated_random_tokens(model: HookedModel, seq_len: int, n_seqs: int, seed: int) -> tuple[torch.Tensor, int]:
    """(ids [n_seqs, prefix + 2*seq_len], prefix length): random non-special tokens, repeated once."""
    special = set(model.tokenizer.all_special_ids)
    pool = np.array([i for i in range(model.vocab_size) if i not in special and i < len(model.tokenizer)])
    rng = np.random.default_rng(seed)
    half = pool[rng.integers(0, len(pool), size=(n_seqs, seq_len))]
    rows = np.concatenate([half, half], axis=1)
    bos = model.tokenizer.bos_token_id
    prefix = 0
    if bos is not None:  # a fixed first token keeps the attention sink out of the measured positions
        rows = np.concatenate([np.full((n_seqs, 1), bos), rows], axis=1)
        prefix = 1
    return torch.tensor(rows, dtype=torch.long), prefix


def score_heads(pats: np.ndarray, layers: list[int], seq_len: int, prefix: int) -> pd.DataFrame:
    """Head scores from patterns [layer, batch, head, q, k] on repeated random tokens."""
    n = seq_len
    rep = np.arange(prefix + n, prefix + 2 * n)
    allq = np.arange(prefix + 1, prefix + 2 * n)
    prev = pats[..., allq, allq - 1].mean(axis=(1, 3))
    induction = pats[..., rep, rep - n + 1].mean(axis=(1, 3))
    duplicate = pats[..., rep, rep - n].mean(axis=(1, 3))
    rows = [{"layer": l, "head": h, "previous_token": float(prev[i, h]), "induction": float(induction[i, h]),
             "duplicate_token": float(duplicate[i, h])}
            for i, l in enumerate(layers) for h in range(pats.shape[2])]
    return pd.DataFrame(rows)


def head_scores(model: HookedModel, *, seq_len: int = 40, n_seqs: int = 4, seed: int = 0,
                layers: list[int] | None = None) -> pd.DataFrame:
    layers = list(range(model.n_layers)) if layers is None else layers
    tokens, prefix = repeated_random_tokens(model, seq_len, n_seqs, seed)
    return score_heads(patterns(model, tokens, layers), layers, seq_len, prefix)


def analyze(model: HookedModel, prompt: str, *, layers: list[int] | None = None, seq_len: int = 40,
            n_seqs: int = 4, seed: int = 0, source: dict[str, Any] | None = None) -> AttentionResult:
    """Patterns on `prompt` for `layers` (default all) and head scores for every head."""
    layers = list(range(model.n_layers)) if layers is None else sorted(set(layers))
    bad = [l for l in layers if not 0 <= l < model.n_layers]
    if bad:
        raise InterpError(f"layers {bad} out of range: {model.spec} has layers 0..{model.n_layers - 1}")
    tokens = model.tokenize(prompt)
    pats = patterns(model, tokens, layers)[:, 0]
    scores = head_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=seed)
    ind = scores[scores["induction"] > INDUCTION_THRESHOLD].sort_values("induction", ascending=False)
    meta = make_meta("attention", model, [prompt], tokens,
                     {"layers": layers, "seq_len": seq_len, "n_seqs": n_seqs, "seed": seed,
                      "prefix_token": model.tokenizer.bos_token}, source)
    return AttentionResult(meta=meta, patterns=pats.astype(np.float32), layers=layers, head_scores=scores,
                           induction_heads=[[int(r.layer), int(r.head), float(r.induction)] for r in ind.itertuples()])


TOOL = register_tool(Tool(
    name="attention", run=analyze,
    help="attention patterns per layer and head on the prompt, and head scores (previous-token, induction, "
         "duplicate-token) for every head on repeated random tokens",
    args=(arg("--layers", type=ints, help="layers whose prompt patterns to keep (default: all)"),
          arg("--seq-len", type=int_at_least(2), default=40, help="random tokens per half of a head-score sequence"),
          arg("--n-seqs", type=int_at_least(1), default=4, help="random sequences averaged for head scores"),
          arg("--seed", type=rng_seed, default=0)),
    from_cli=lambda a, p, m: dict(prompt=p.text, layers=a.layers, seq_len=a.seq_len, n_seqs=a.n_seqs, seed=a.seed),
    from_sample=lambda s, m: dict(prompt=s.prompt),
))
