"""Attention patterns per layer/head for a prompt, and head scores on repeated random tokens.

Head scores (each a mean attention weight in [0, 1]) on sequences `[prefix] r_1..r_n r_1..r_n` of
random non-special tokens:
  previous_token   query i -> key i-1, over all non-prefix queries
  induction        query i in the repeat -> key i-n+1 (the token after the earlier copy of the current one)
  duplicate_token  query i in the repeat -> key i-n (the earlier copy of the current token)

One setting's scores move with n and the draw (on SmolLM2 head 17.5 scores 0.44 at n=40 and 0.64 at
n=50), so scores are measured at several lengths x seeds and stored per setting, with each head's
mean, std, min and max across settings. A head is named an induction head only when its induction
score is above the threshold at every setting (min > threshold); heads above it at some settings
only are reported as unstable.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import int_at_least, ints, ints_at_least, rng_seed
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, act_name
from workbench.interp.tools import Tool, arg, register_tool

INDUCTION_THRESHOLD = 0.5
# Defaults measured on SmolLM2-135M over 10 base seeds: 4 lengths x 2 seeds x 8 sequences named the same
# four heads every time; 4 sequences per setting, or lengths from 10-20 (where head 18.7 scores ~0.5),
# changed the set with the seed.
SEQ_LENS = (30, 40, 50, 60)   # random tokens per half, one setting each (times N_SEEDS)
N_SEEDS = 2
N_SEQS = 8                    # sequences per setting
SCORES = ("previous_token", "induction", "duplicate_token")


@register_kind("attention")
@dataclass
class AttentionResult:
    meta: Meta
    patterns: np.ndarray        # [n_layers_kept, head, query, key] on the prompt
    layers: list[int]           # the layer of each row of `patterns`
    # layer, head, then per score its mean over settings and `<score>_std`, `_min`, `_max`
    head_scores: pd.DataFrame
    induction_heads: list[list[float]]  # [layer, head, mean score]: induction score > threshold at every setting
    # Added with multi-setting scores; the defaults describe artifacts saved before (one setting).
    unstable_heads: list[list[float]] = field(default_factory=list)  # [layer, head, mean, min, max], min <= thr < max
    by_setting: pd.DataFrame | None = None  # seq_len, seed, layer, head and the scores, one row per setting x head

    def summary(self) -> str:
        top = self.head_scores.sort_values("induction", ascending=False).head(5)
        spread = "induction_min" in self.head_scores.columns
        thr = self.meta.params.get("threshold", INDUCTION_THRESHOLD)
        settings = (f" at all {self.by_setting.groupby(['seq_len', 'seed']).ngroups} settings"
                    if self.by_setting is not None else "")

        def rng(r: Any) -> str:
            return f" [{r.induction_min:.2f}, {r.induction_max:.2f}]" if spread else ""

        lines = [f"patterns {tuple(self.patterns.shape)} for layers {self.layers[0]}..{self.layers[-1]}",
                 f"induction heads (score > {thr}{settings}): "
                 + (", ".join(f"L{int(l)}H{int(h)} {s:.2f}" for l, h, s in self.induction_heads) or "none"),
                 "unstable (above at some settings only): "
                 + (", ".join(f"L{int(l)}H{int(h)} {m:.2f} [{lo:.2f}, {hi:.2f}]" for l, h, m, lo, hi in self.unstable_heads)
                    or "none"),
                 "top induction scores (mean [min, max]): "
                 + ", ".join(f"L{r.layer}H{r.head} {r.induction:.2f}{rng(r)}" for r in top.itertuples())]
        return "\n".join(lines)


def pattern_names(layers: list[int]) -> list[str]:
    return [act_name("pattern", l) for l in layers]


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
    """Head scores at one setting: `n_seqs` sequences of `seq_len` random tokens repeated once."""
    layers = list(range(model.n_layers)) if layers is None else layers
    tokens, prefix = repeated_random_tokens(model, seq_len, n_seqs, seed)
    return score_heads(patterns(model, tokens, layers), layers, seq_len, prefix)


def setting_seeds(seed: int, n_seeds: int) -> list[int]:
    """`n_seeds` independent seeds derived from the base `seed` (different bases share none)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_seeds)]


def scores_by_setting(model: HookedModel, *, seq_lens: Sequence[int] = SEQ_LENS, n_seqs: int = N_SEQS,
                      n_seeds: int = N_SEEDS, seed: int = 0) -> pd.DataFrame:
    """Head scores at every (seq_len, derived seed) setting, one row per setting x head."""
    if not seq_lens or min(seq_lens) < 2 or n_seqs < 1 or n_seeds < 1:
        raise InterpError(f"head scores need sequence lengths >= 2, n_seqs >= 1 and n_seeds >= 1 "
                          f"(got {list(seq_lens)}, {n_seqs}, {n_seeds})")
    if 2 * max(seq_lens) + 1 > model.n_ctx:
        raise InterpError(f"sequence length {max(seq_lens)} makes head-score sequences of {2 * max(seq_lens) + 1} "
                          f"tokens; {model.spec} takes at most {model.n_ctx}")
    frames = []
    for n in sorted(set(seq_lens)):
        for s in setting_seeds(seed, n_seeds):
            frames.append(head_scores(model, seq_len=n, n_seqs=n_seqs, seed=s).assign(seq_len=n, seed=s))
    df = pd.concat(frames, ignore_index=True)
    return df[["seq_len", "seed", "layer", "head", *SCORES]]


def summarize_scores(by_setting: pd.DataFrame) -> pd.DataFrame:
    """Per head: each score's mean over settings (named as the score) and its std, min and max."""
    g = by_setting.groupby(["layer", "head"], sort=True)[list(SCORES)]
    out = g.mean()
    for stat, part in (("std", g.std(ddof=0)), ("min", g.min()), ("max", g.max())):
        out = out.join(part.add_suffix(f"_{stat}"))
    return out.reset_index()


def classify_induction(scores: pd.DataFrame, threshold: float = INDUCTION_THRESHOLD
                       ) -> tuple[list[list[float]], list[list[float]]]:
    """(stable heads [layer, head, mean]: min > threshold; unstable [layer, head, mean, min, max]: min <= thr < max)."""
    lo = scores["induction_min"] if "induction_min" in scores else scores["induction"]
    hi = scores["induction_max"] if "induction_max" in scores else scores["induction"]
    ranked = pd.DataFrame({"layer": scores["layer"], "head": scores["head"], "mean": scores["induction"],
                           "lo": lo, "hi": hi}).sort_values("mean", ascending=False)
    stable = [[int(r.layer), int(r.head), float(r.mean)] for r in ranked.itertuples() if r.lo > threshold]
    unstable = [[int(r.layer), int(r.head), float(r.mean), float(r.lo), float(r.hi)]
                for r in ranked.itertuples() if r.lo <= threshold < r.hi]
    return stable, unstable


def run(model: HookedModel, prompt: str, *, layers: list[int] | None = None,
            seq_lens: Sequence[int] = SEQ_LENS, n_seqs: int = N_SEQS, n_seeds: int = N_SEEDS, seed: int = 0,
            threshold: float = INDUCTION_THRESHOLD, source: dict[str, Any] | None = None) -> AttentionResult:
    """Patterns on `prompt` for `layers` (default all) and every head's scores over lengths x seeds."""
    layers = list(range(model.n_layers)) if layers is None else sorted(set(layers))
    bad = [l for l in layers if not 0 <= l < model.n_layers]
    if bad:
        raise InterpError(f"layers {bad} out of range: {model.spec} has layers 0..{model.n_layers - 1}")
    tokens = model.tokenize(prompt)
    pats = patterns(model, tokens, layers)[:, 0]
    by_setting = scores_by_setting(model, seq_lens=seq_lens, n_seqs=n_seqs, n_seeds=n_seeds, seed=seed)
    scores = summarize_scores(by_setting)
    stable, unstable = classify_induction(scores, threshold)
    meta = make_meta("attention", model, [prompt], tokens,
                     {"layers": layers, "seq_lens": sorted(set(seq_lens)), "n_seqs": n_seqs, "n_seeds": n_seeds,
                      "seed": seed, "setting_seeds": setting_seeds(seed, n_seeds), "threshold": threshold,
                      "induction_rule": "induction score above threshold at every setting",
                      "prefix_token": model.tokenizer.bos_token}, source)
    return AttentionResult(meta=meta, patterns=pats.astype(np.float32), layers=layers, head_scores=scores,
                           induction_heads=stable, unstable_heads=unstable, by_setting=by_setting)


TOOL = register_tool(Tool(
    name="attention", run=run,
    help="attention patterns per layer and head on the prompt, and head scores (previous-token, induction, "
         "duplicate-token) for every head on repeated random tokens at several lengths x seeds, with their spread; "
         "induction heads are named only when above the threshold at every setting",
    args=(arg("--layers", type=ints, help="layers whose prompt patterns to keep (default: all)"),
          arg("--seq-lens", "--seq-len", type=ints_at_least(2), default=list(SEQ_LENS),
              help="random tokens per half of a head-score sequence, one setting per length "
                   f"(default {','.join(map(str, SEQ_LENS))})"),
          arg("--n-seeds", type=int_at_least(1), default=N_SEEDS,
              help=f"seeds per length (default {N_SEEDS}); scores are averaged over lengths x seeds, spread stored"),
          arg("--n-seqs", type=int_at_least(1), default=N_SEQS, help=f"random sequences per setting (default {N_SEQS})"),
          arg("--seed", type=rng_seed, default=0, help="base seed the per-setting seeds derive from"),
          arg("--threshold", type=float, default=INDUCTION_THRESHOLD,
              help=f"an induction head scores above this at every setting (default {INDUCTION_THRESHOLD})")),
    from_cli=lambda a, p, m: dict(prompt=p.text, layers=a.layers, seq_lens=a.seq_lens, n_seqs=a.n_seqs,
                                  n_seeds=a.n_seeds, seed=a.seed, threshold=a.threshold),
    from_sample=lambda s, m: dict(prompt=s.prompt),
))
