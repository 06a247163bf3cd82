"""The neurons and SAE features most active where the model answers, and their attribution to its answer.

On a prompt or a stored eval sample (`--run RUN --sample ID`), at the answer position (the last prompt
token, whose next-token logits score the answer): the MLP neurons of each `--layers` layer and the
latents of each `--sae`, ranked by activation, each with activation x gradient of the chosen answer's
logit (for a sample: the choice the model picked, right or wrong; else the model's top next token).
A latent's gradient is the residual gradient along its decoder direction (a_f * W_dec[f] . dlogit/dx),
the linear attribution of sparse-feature-circuit work; the SAE's error term (x - x_hat) . dlogit/dx is
reported beside them. Each unit is linked to the newest `neurons` / `features` artifact that explains
it, with the tokens of its top contexts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.argtypes import int_at_least, ints
from workbench.interp import artifacts as A
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.sae import dense_encoder, load_sae
from workbench.interp.sites import check_layers, hook_name, parse_hook
from workbench.interp.tools import Tool, arg, register_tool


@register_kind("top_units")
@dataclass
class TopUnitsResult:
    meta: Meta
    position: int
    answer: str
    answer_id: int
    answer_logit: float
    units: pd.DataFrame       # kind, layer, source, unit, activation, attribution, rank, explained_by, top_tokens
    sae_error: dict[str, float]   # sae id -> (x - x_hat) . grad at the position

    def summary(self) -> str:
        lines = [f"answer {self.answer!r} (logit {self.answer_logit:.3f}) at position {self.position}"]
        for (kind, source), part in self.units.groupby(["kind", "source"], sort=False):
            lines.append(f"{kind}s of {source}:")
            lines += [f"  #{r.unit:<6} act {r.activation:8.3f}  attr {r.attribution:+8.4f}  {r.top_tokens or ''}"
                      for r in part.sort_values("rank").head(10).itertuples()]
        return "\n".join(lines)


def _explanations(kind: str, model: HookedModel, root: str | os.PathLike | None, match: dict[str, Any]) -> tuple[str, Any]:
    """(artifact id, its top contexts table) of the newest explanation artifact matching, or ('', None)."""
    for m in reversed(A.list_artifacts(root)):
        if m.get("kind") != kind or (m.get("model") or {}).get("sha256") != model.ref.sha256:
            continue
        if all((m.get("params") or {}).get(k) == v for k, v in match.items()):
            try:
                return m["id"], A.load(m["id"], root).contexts
            except Exception:  # a damaged explanation artifact must not stop this one; it is just not linked
                continue
    return "", None


def _top_tokens(ctx: Any, unit: int, n: int = 3) -> str:
    if ctx is None:
        return ""
    toks = ctx.loc[ctx["unit"] == unit].sort_values("rank")["token"].head(n)
    return ", ".join(repr(t) for t in toks)


def run(model: HookedModel, prompt: str, *, layers: list[int] | None = None, saes: list[str] | None = None,
        answer: str | None = None, top: int = 10, artifacts: str | os.PathLike | None = None,
        source: dict[str, Any] | None = None) -> TopUnitsResult:
    tokens = model.tokenize(prompt)
    pos = tokens.shape[-1] - 1
    layers = check_layers(model, layers) if layers else ([] if saes else [model.n_layers // 2])
    sae_objs = {sid: load_sae(sid, artifacts, model) for sid in saes or []}
    hooks = {hook_name(model, "mlp_neurons", l) for l in layers} | {r.site for r in sae_objs.values()}
    acts: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act.retain_grad()
        acts[hook.name] = act
        return act

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, [(h, keep) for h in sorted(hooks)])
        if answer:
            ids = model.tokenizer(answer, add_special_tokens=False)["input_ids"]
            if not ids:
                raise InterpError(f"answer {answer!r} tokenises to nothing")
            answer_id = int(ids[0])
        else:
            answer_id = int(logits[0, pos].argmax())
        target = logits[0, pos, answer_id]
        target.backward()
    canonical = {model.bridge.hook_dict[h].name: h for h in hooks}
    acts = {canonical.get(k, k): v for k, v in acts.items()}
    rows: list[dict[str, Any]] = []
    errors: dict[str, float] = {}
    for l in layers:
        h = hook_name(model, "mlp_neurons", l)
        a, g = acts[h].detach()[0, pos].float(), acts[h].grad[0, pos].float()
        link, ctx = _explanations("neurons", model, artifacts, {"layer": l})
        rows += _rank("neuron", l, f"layer {l} MLP", a, a * g, top, link, ctx)
    for sid, r in sae_objs.items():
        coder = r.sae()
        x, g = acts[r.site].detach()[0, pos].float(), acts[r.site].grad[0, pos].float()
        z = dense_encoder(coder)(x[None])[0]
        dec = coder.W_dec.detach().float()
        attr = z * (dec @ g)
        out = coder.encode(x[None])
        errors[sid] = float((x - coder.decode(out.top_acts, out.top_indices)[0].float()) @ g)
        link, ctx = _explanations("features", model, artifacts, {"sae": sid})
        rows += _rank("feature", parse_hook(r.site)[1], sid, z, attr, top, link, ctx)
    model.hf.zero_grad(set_to_none=True)
    meta = make_meta("top_units", model, [prompt], tokens,
                     {"layers": layers, "saes": list(sae_objs), "top": top, "answer": answer, "position": pos,
                      "attribution": "activation x d(answer logit)/d(activation); SAE latents: a_f * W_dec[f] . grad"},
                     source)
    return TopUnitsResult(meta=meta, position=pos, answer=model.tokenizer.decode([answer_id]), answer_id=answer_id,
                          answer_logit=float(target.detach()), units=pd.DataFrame(rows, columns=[
                              "kind", "layer", "source", "unit", "activation", "attribution", "rank", "explained_by",
                              "top_tokens"]), sae_error=errors)


def _rank(kind: str, layer: int, source: str, act: torch.Tensor, attr: torch.Tensor, top: int, link: str,
          ctx: Any) -> list[dict[str, Any]]:
    """The `top` units by activation, then any of the `top` by |attribution| not already listed."""
    by_act = act.topk(min(top, len(act))).indices.tolist()
    by_attr = [u for u in attr.abs().topk(min(top, len(attr))).indices.tolist() if u not in by_act and attr[u] != 0]
    return [{"kind": kind, "layer": layer, "source": source, "unit": u, "activation": float(act[u]),
             "attribution": float(attr[u]), "rank": i, "explained_by": link, "top_tokens": _top_tokens(ctx, u)}
            for i, u in enumerate(by_act + by_attr)]


def _sample_saes(model: HookedModel, root: str | os.PathLike | None) -> list[str]:
    """The newest SAE of this model per site in the artifact root."""
    newest: dict[str, str] = {}
    for m in A.list_artifacts(root):
        if m.get("kind") == "sae" and (m.get("model") or {}).get("sha256") == model.ref.sha256:
            newest[str((m.get("params") or {}).get("site"))] = m["id"]
    return sorted(newest.values())


def _from_sample(s: Any, m: HookedModel, root: Path | None = None) -> dict[str, Any]:
    saes = _sample_saes(m, root)
    layers = sorted({int(parse_hook(A.read_manifest(sid, root)["params"]["site"])[1]) for sid in saes}) or None
    return dict(prompt=s.prompt, layers=layers, saes=saes, answer=s.predicted_text or s.target_text or None,
                artifacts=root)


TOOL = register_tool(Tool(
    name="top_units", run=run, uses_artifacts=True,
    help="the MLP neurons and SAE features most active at the answer position, with activation x gradient "
         "attribution to the chosen answer's logit, linked to their explanations",
    args=(arg("--layers", type=ints, help="layers whose MLP neurons to rank (default: the middle layer, or none with --sae)"),
          arg("--sae", action="append", help="an SAE artifact id whose features to rank (repeatable)"),
          arg("--answer", help="the answer whose logit is attributed (default: a sample's chosen answer, else the "
                               "model's top next token)"),
          arg("--top", type=int_at_least(1), default=10, help="units kept per layer / SAE (default 10)")),
    from_cli=lambda a, p, m: dict(prompt=p.text, layers=a.layers, saes=a.sae, top=a.top, artifacts=a.artifacts,
                                  answer=a.answer or (p.sample and (p.sample.predicted_text or p.sample.target_text))
                                  or None),
    from_sample=_from_sample,
))
