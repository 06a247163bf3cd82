"""Token attributions for one target next-token: Integrated Gradients on input embeddings, gradient x input.

IG (Captum's LayerIntegratedGradients over the embedding layer) interpolates from a baseline prompt
in which every token but the first is replaced by a neutral token. Position 0 stays fixed: moving
the first token (the attention sink) makes the path integral fail to converge (see
shared/research/models.md §6). The number of path steps is not trusted blindly: starting at `n_steps`,
steps double until the completeness error |sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)| is
at most `tolerance` (on SmolLM2's IOI prompt 64 Gauss-Legendre steps miss by 15%, 256 by 0.05%),
else `IGNotConverged` is raised; the steps used and every try's error are recorded.
`internal_batch_size` bounds memory.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.argtypes import float_in, int_at_least
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.tools import Tool, arg, register_tool

TOLERANCE = 0.01    # default bound on the relative completeness error
START_STEPS = 64
MAX_STEPS = 1024


class IGNotConverged(InterpError):
    """Integrated Gradients still misses completeness by more than the tolerance at the largest step count."""

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
    relative_delta: float        # completeness error |delta| / |f_input - f_baseline|
    # Added with step adaptation; the defaults describe artifacts saved before it (fixed steps, no check).
    n_steps: int | None = None   # path steps of the stored attribution
    tolerance: float | None = None
    tries: list[list[float]] = field(default_factory=list)  # [steps, completeness error] per try

    def summary(self) -> str:
        toks = self.meta.tokens[0]
        order = np.argsort(-np.abs(self.ig))[:8]
        steps = f" at {self.n_steps} steps" if self.n_steps else ""
        tried = f" (tried {', '.join(f'{int(n)}: {100 * e:.2f}%' for n, e in self.tries)})" if len(self.tries) > 1 else ""
        bound = TOLERANCE if self.tolerance is None else self.tolerance
        return "\n".join([
            f"target {self.target!r} ({self.objective}): f(x) = {self.f_input:.4f}, f(baseline) = {self.f_baseline:.4f}",
            f"completeness error {100 * self.relative_delta:.2f}% of f(x) - f(baseline) (delta {self.delta:+.5f})"
            f"{steps}{tried}",
            "largest IG attributions: " + ", ".join(f"{toks[i]!r} {self.ig[i]:+.3f}" for i in order),
        ] + ([f"WARNING: IG has not converged (completeness error above {bound:.0%})"]
             if self.relative_delta > bound else []))


def _baseline_token(model: HookedModel, token: str | None) -> int:
    if token is not None:
        return model.single_token(token)
    tok = model.tokenizer
    for cand in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id):
        if cand is not None:
            return int(cand)
    raise InterpError("the tokenizer has no pad/eos/unk token; pass a baseline token")


def step_schedule(n_steps: int, max_steps: int) -> list[int]:
    """Step counts tried: n_steps, doubled while at most max_steps."""
    if not 1 <= n_steps <= max_steps:
        raise InterpError(f"IG steps need 1 <= --n-steps <= --max-steps (got {n_steps} and {max_steps})")
    out = [n_steps]
    while out[-1] * 2 <= max_steps:
        out.append(out[-1] * 2)
    return out


def run(model: HookedModel, prompt: str, target: str, *, objective: str = "logprob",
              n_steps: int = START_STEPS, max_steps: int = MAX_STEPS, tolerance: float = TOLERANCE,
              internal_batch_size: int = 16, baseline_token: str | None = None,
              source: dict[str, Any] | None = None) -> AttributionResult:
    """IG and gradient x input attributions of `objective` of the single token `target` after `prompt`.

    IG steps start at `n_steps` and double (up to `max_steps`) until the relative completeness error
    is at most `tolerance`; IGNotConverged if it never is.
    """
    from captum.attr import LayerIntegratedGradients

    if objective not in OBJECTIVES:
        raise InterpError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    if not tolerance > 0:
        raise InterpError(f"--tolerance is a positive fraction of f(x) - f(baseline); got {tolerance}")
    schedule = step_schedule(n_steps, max_steps)
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
    with torch.no_grad():
        f_x = float(forward(ids)[0, target_id])
        f_b = float(forward(baseline)[0, target_id])
    scale = max(abs(f_x - f_b), 1e-12)
    tries: list[list[float]] = []
    for steps in schedule:
        attr, delta = lig.attribute(ids, baselines=baseline, target=target_id, n_steps=steps,
                                    internal_batch_size=internal_batch_size, return_convergence_delta=True)
        d = float(delta[0])
        tries.append([steps, abs(d) / scale])
        if tries[-1][1] <= tolerance:
            break
    else:
        model.hf.zero_grad(set_to_none=True)
        raise IGNotConverged(
            f"Integrated Gradients did not converge: completeness error {100 * tries[-1][1]:.2f}% of "
            f"f(x) - f(baseline) = {f_x - f_b:+.4g} at {schedule[-1]} steps (tolerance {100 * tolerance:g}%; tried "
            + ", ".join(f"{int(n)}: {100 * e:.2f}%" for n, e in tries)
            + "); raise --max-steps, or loosen --tolerance to accept it")
    emb = embed(ids).detach().requires_grad_(True)
    out = obj(model.hf(inputs_embeds=emb).logits[:, -1, :])[0, target_id]
    (grad,) = torch.autograd.grad(out, emb)
    gxi = (grad * emb).sum(-1)[0].detach()
    model.hf.zero_grad(set_to_none=True)
    meta = make_meta("attribution", model, [prompt], ids,
                     {"target": target, "objective": objective, "n_steps": steps, "start_steps": n_steps,
                      "max_steps": max_steps, "tolerance": tolerance, "method": "gausslegendre",
                      "internal_batch_size": internal_batch_size, "baseline_token_id": base_id,
                      "baseline": "position 0 kept, every later token replaced by the baseline token"}, source)
    return AttributionResult(meta=meta, target=target, target_id=target_id, objective=objective,
                             ig=attr.sum(-1)[0].detach().numpy().astype(np.float32),
                             grad_x_input=gxi.numpy().astype(np.float32), f_input=f_x, f_baseline=f_b, delta=d,
                             relative_delta=tries[-1][1], n_steps=steps, tolerance=tolerance, tries=tries)


def _target(explicit: str | None, sample: Any) -> str:
    target = explicit if explicit is not None else (sample.target_text if sample else None)
    if not target:
        raise InterpError("--target is required (the next token to attribute)")
    return target


TOOL = register_tool(Tool(
    name="attribution", run=run, aliases=("attribute",),
    help="Integrated Gradients (Captum, on the input embeddings, position 0 kept in the baseline; steps doubled until "
         "completeness holds within the tolerance, else an error) and gradient x input for one target next token",
    args=(arg("--target", help="target token text (default: the sample's target text)"),
          arg("--objective", default="logprob", choices=["logprob", "logit"]),
          arg("--n-steps", type=int_at_least(2), default=START_STEPS,
              help=f"IG path steps to start with (default {START_STEPS}); doubled until the completeness error is "
                   "within --tolerance"),
          arg("--max-steps", type=int_at_least(2), default=MAX_STEPS,
              help=f"most IG steps to try before failing (default {MAX_STEPS})"),
          arg("--tolerance", type=float_in(0, 1e9, low_open=True), default=TOLERANCE,
              help="largest accepted completeness error |sum(IG) - (f(x) - f(baseline))| / |f(x) - f(baseline)| "
                   f"(default {TOLERANCE})"),
          arg("--internal-batch-size", type=int_at_least(1), default=16, help="IG path points per forward (bounds memory)"),
          arg("--baseline-token", help="token replacing positions 1.. in the baseline (default pad/eos)")),
    from_cli=lambda a, p, m: dict(prompt=p.text, target=_target(a.target, p.sample), objective=a.objective,
                                  n_steps=a.n_steps, max_steps=a.max_steps, tolerance=a.tolerance,
                                  internal_batch_size=a.internal_batch_size,
                                  baseline_token=a.baseline_token),
    # A dashboard job gives up sooner than the CLI (256 steps: minutes, not tens of minutes, on a CPU).
    from_sample=lambda s, m: dict(prompt=s.prompt, target=_target(None, s), max_steps=256),
))
