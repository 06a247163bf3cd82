"""Token attributions for one target next-token: Integrated Gradients on input embeddings, gradient x input.

IG (Captum's LayerIntegratedGradients over the embedding layer) interpolates from a baseline prompt
in which every token but the first is replaced by a neutral token. Position 0 stays fixed: moving
the first token (the attention sink) makes the path integral fail to converge (see
shared/research/models.md §6). The completeness delta sum(attr) - (f(x) - f(baseline)) is recorded
with its size relative to f(x) - f(baseline); `internal_batch_size` bounds memory.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.argtypes import int_at_least
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.tools import Tool, arg, register_tool

CONVERGED = 0.05   # relative completeness delta above which the summary warns

OBJECTIVES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "logprob": lambda last: torch.log_softmax(last.float(), dim=-1),
    "logit": lambda last: last.float(),
}


@register_kind("attribution")
@dataclass
class AttributionResult:
    meta: Meta
    target: str
    target_id: int
    objective: str
    ig: np.ndarray               # [position] IG attribution (summed over the embedding dimension)
    grad_x_input: np.ndarray     # [position] gradient x input saliency
    f_input: float               # objective at the prompt
    f_baseline: float            # objective at the baseline
    delta: float                 # completeness delta: sum(ig) - (f_input - f_baseline)
    relative_delta: float        # |delta| / |f_input - f_baseline|

    def summary(self) -> str:
        toks = self.meta.tokens[0]
        order = np.argsort(-np.abs(self.ig))[:8]
        return "\n".join([
            f"target {self.target!r} ({self.objective}): f(x) = {self.f_input:.4f}, f(baseline) = {self.f_baseline:.4f}",
            f"completeness delta {self.delta:+.5f} ({100 * self.relative_delta:.2f}% of f(x) - f(baseline))",
            "largest IG attributions: " + ", ".join(f"{toks[i]!r} {self.ig[i]:+.3f}" for i in order),
        ] + ([f"WARNING: IG has not converged (delta > {CONVERGED:.0%}); raise --n-steps"]
             if self.relative_delta > CONVERGED else []))


def _baseline_token(model: HookedModel, token: str | None) -> int:
    if token is not None:
        return model.single_token(token)
    tok = model.tokenizer
    for cand in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id):
        if cand is not None:
            return int(cand)
    raise InterpError("the tokenizer has no pad/eos/unk token; pass a baseline token")


def attribute(model: HookedModel, prompt: str, target: str, *, objective: str = "logprob", n_steps: int = 64,
              internal_batch_size: int = 16, baseline_token: str | None = None,
              source: dict[str, Any] | None = None) -> AttributionResult:
    """IG and gradient x input attributions of `objective` of the single token `target` after `prompt`."""
    from captum.attr import LayerIntegratedGradients

    if objective not in OBJECTIVES:
        raise InterpError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    obj = OBJECTIVES[objective]
    target_id = model.single_token(target)
    ids = model.tokenize(prompt)
    base_id = _baseline_token(model, baseline_token)
    baseline = ids.clone()
    baseline[:, 1:] = base_id

    def forward(x: torch.Tensor) -> torch.Tensor:
        return obj(model.logits(x)[:, -1, :])

    embed = model.hf.get_input_embeddings()
    lig = LayerIntegratedGradients(forward, embed)
    attr, delta = lig.attribute(ids, baselines=baseline, target=target_id, n_steps=n_steps,
                                internal_batch_size=internal_batch_size, return_convergence_delta=True)
    with torch.no_grad():
        f_x = float(forward(ids)[0, target_id])
        f_b = float(forward(baseline)[0, target_id])
    emb = embed(ids).detach().requires_grad_(True)
    out = obj(model.hf(inputs_embeds=emb).logits[:, -1, :])[0, target_id]
    (grad,) = torch.autograd.grad(out, emb)
    gxi = (grad * emb).sum(-1)[0].detach()
    model.hf.zero_grad(set_to_none=True)
    d = float(delta[0])
    meta = make_meta("attribution", model, [prompt], ids,
                     {"target": target, "objective": objective, "n_steps": n_steps, "method": "gausslegendre",
                      "internal_batch_size": internal_batch_size, "baseline_token_id": base_id,
                      "baseline": "position 0 kept, every later token replaced by the baseline token"}, source)
    return AttributionResult(meta=meta, target=target, target_id=target_id, objective=objective,
                             ig=attr.sum(-1)[0].detach().numpy().astype(np.float32),
                             grad_x_input=gxi.numpy().astype(np.float32), f_input=f_x, f_baseline=f_b, delta=d,
                             relative_delta=abs(d) / max(abs(f_x - f_b), 1e-12))


def _target(explicit: str | None, sample: Any) -> str:
    target = explicit if explicit is not None else (sample.target_text if sample else None)
    if not target:
        raise InterpError("--target is required (the next token to attribute)")
    return target


TOOL = register_tool(Tool(
    name="attribution", run=attribute, aliases=("attribute",),
    help="Integrated Gradients (Captum, on the input embeddings, position 0 kept in the baseline) and gradient x "
         "input for one target next token",
    args=(arg("--target", help="target token text (default: the sample's target text)"),
          arg("--objective", default="logprob", choices=["logprob", "logit"]),
          arg("--n-steps", type=int_at_least(2), default=64),
          arg("--internal-batch-size", type=int_at_least(1), default=16, help="IG path points per forward (bounds memory)"),
          arg("--baseline-token", help="token replacing positions 1.. in the baseline (default pad/eos)")),
    from_cli=lambda a, p, m: dict(prompt=p.text, target=_target(a.target, p.sample), objective=a.objective,
                                  n_steps=a.n_steps, internal_batch_size=a.internal_batch_size,
                                  baseline_token=a.baseline_token),
    from_sample=lambda s, m: dict(prompt=s.prompt, target=_target(None, s)),
))
