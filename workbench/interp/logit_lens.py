"""Logit lens: what each layer's residual stream would predict if the model stopped there.

Each layer's `hook_resid_post` goes through the model's own final norm and unembedding, recomputed
here from the HF modules (TransformerLens' helper skips/mis-applies the norm in some versions). The
last layer's lens therefore equals the model's logits, which the tests check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import int_at_least, ints
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, act_name, resid_name
from workbench.interp.tools import Tool, arg, register_tool, single_token_or_none


@register_kind("logit_lens")
@dataclass
class LogitLensResult:
    meta: Meta
    positions: list[int]
    top: pd.DataFrame                  # layer, position, rank, token_id, token, prob, logit
    target: str | None = None
    target_id: int | None = None
    target_prob: np.ndarray | None = None   # [layer, position] probability of the target token
    target_rank: np.ndarray | None = None   # [layer, position] its rank (0 = top)

    def summary(self) -> str:
        last = self.positions[-1]
        top1 = self.top[(self.top["rank"] == 0) & (self.top["position"] == last)]
        lines = [f"top-1 next token at position {last} by layer:"]
        lines += [f"  L{r.layer:<3} {r.token!r:<16} p={r.prob:.3f}" for r in top1.itertuples()]
        if self.target_prob is not None:
            lines.append(f"target {self.target!r}: p by layer " + " ".join(f"{p:.2f}" for p in self.target_prob[:, -1]))
        return "\n".join(lines)


@torch.no_grad()
def layer_logits(model: HookedModel, tokens: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """Lens logits [layer, position, vocab] at `positions` of a single prompt."""
    names = [resid_name(l, "post") for l in range(model.n_layers)]
    _, cache = model.run_with_cache(tokens, names, need_logits=False)
    resid = torch.stack([cache[n][0, positions] for n in names])
    return model.unembed(resid).float()


def run(model: HookedModel, prompt: str, *, k: int = 10, positions: list[int] | None = None,
         target: str | None = None, source: dict[str, Any] | None = None) -> LogitLensResult:
    """Top-`k` tokens per layer at `positions` (default: the last), and the target token's rank/prob."""
    tokens = model.tokenize(prompt)
    n = tokens.shape[-1]
    bad = [p for p in positions or [] if not -n <= p < n]
    if bad:
        raise InterpError(f"position(s) {', '.join(map(str, bad))} out of range: the prompt has {n} tokens "
                          f"(positions 0..{n - 1}, or -{n}..-1 counting from the end)")
    if not 1 <= k <= model.vocab_size:
        raise InterpError(f"-k {k} is out of range: the vocabulary of {model.spec} has {model.vocab_size} tokens")
    positions = [n - 1] if positions is None else [p % n for p in positions]
    target_id = model.single_token(target) if target is not None else None
    logits = layer_logits(model, tokens, positions)
    probs = torch.softmax(logits, dim=-1)
    top_p, top_i = probs.topk(k, dim=-1)
    rows = []
    for l in range(logits.shape[0]):
        for j, pos in enumerate(positions):
            for r in range(k):
                tid = int(top_i[l, j, r])
                rows.append({"layer": l, "position": pos, "rank": r, "token_id": tid,
                             "token": model.tokenizer.decode([tid]), "prob": float(top_p[l, j, r]),
                             "logit": float(logits[l, j, tid])})
    t_prob = t_rank = None
    if target_id is not None:
        t_prob = probs[..., target_id].numpy().astype(np.float32)
        t_rank = (logits > logits[..., target_id:target_id + 1]).sum(-1).numpy().astype(np.int64)
    meta = make_meta("logit_lens", model, [prompt], tokens,
                     {"k": k, "positions": positions, "target": target, "site": act_name("resid_post", "{l}"),
                      "norm": "model final norm + unembed, recomputed"}, source)
    return LogitLensResult(meta=meta, positions=positions, top=pd.DataFrame(rows), target=target,
                           target_id=target_id, target_prob=t_prob, target_rank=t_rank)


TOOL = register_tool(Tool(
    name="logit_lens", run=run,
    help="per-layer top-k next tokens: each layer's residual stream through the model's own final norm and "
         "unembedding; with --target, that token's probability and rank by layer",
    args=(arg("-k", type=int_at_least(1), default=10, help="tokens kept per layer and position (default 10)"),
          arg("--positions", type=ints, help="positions (default: last; negative counts from the end)"),
          arg("--target", help="also track this token's probability and rank (default: a sample's one-token gold)")),
    from_cli=lambda a, p, m: dict(prompt=p.text, k=a.k, positions=a.positions,
                                  target=a.target if a.target is not None
                                  else single_token_or_none(m, p.sample and p.sample.target_text)),
    from_sample=lambda s, m: dict(prompt=s.prompt, k=10, target=single_token_or_none(m, s.target_text)),
))
