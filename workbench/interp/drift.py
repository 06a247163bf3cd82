"""Quantization drift: how far a model variant's residual streams move from the reference, layer by layer.

Both models read the same token ids; per layer and token, the cosine similarity and relative error
||b - a|| / ||a|| of `blocks.{l}.hook_resid_post` are averaged over all tokens of all prompts. Final
logits are compared too (top-1 agreement, max |delta logit|). A variant is either another spec or a
named transform of the reference's weights (registry `VARIANTS`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, act_name, resid_name
from workbench.interp.tools import Tool, arg, register_tool


def _int8_dynamic(hf: Any, per_channel: bool = False) -> Any:
    """torch dynamic int8 quantization of every Linear except the (tied) unembedding."""
    import warnings

    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    # The bridge reads the unembedding weight as a tensor; a quantized lm_head has none.
    spec = {n: qconfig for n, m in hf.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not hf.get_output_embeddings()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(hf), spec, dtype=torch.qint8).eval()


def _bf16_roundtrip(hf: Any) -> Any:
    """Weights rounded to bfloat16 and back (compute stays float32)."""
    q = copy.deepcopy(hf)
    with torch.no_grad():
        for p in q.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))
    return q.eval()


VARIANTS: dict[str, Callable[[Any], Any]] = {
    "int8-dynamic": _int8_dynamic,                                           # per-tensor weight scales
    "int8-dynamic-per-channel": lambda hf: _int8_dynamic(hf, per_channel=True),
    "bf16-weights": _bf16_roundtrip,
}

DEFAULT_PROMPTS = (
    "The capital of France is",
    "def add(a, b):\n    return a + b",
    "Question: Which organ pumps blood through the body?\nAnswer:",
    "Once upon a time, in a small village, there lived",
)


@register_kind("drift")
@dataclass
class DriftResult:
    meta: Meta
    reference: str
    variant: str
    cosine: np.ndarray          # [layer] mean cosine similarity of resid_post, reference vs variant
    cosine_min: np.ndarray      # [layer] worst token
    rel_error: np.ndarray       # [layer] mean ||b - a|| / ||a||
    top1_agreement: float       # share of positions whose argmax next token agrees
    max_abs_dlogit: float
    n_tokens: int

    def summary(self) -> str:
        lines = [f"{self.reference} vs {self.variant}: {self.n_tokens} tokens, top-1 agreement "
                 f"{self.top1_agreement:.3f}, max |dlogit| {self.max_abs_dlogit:.4f}",
                 f"{'layer':>5} {'cosine':>8} {'min cos':>8} {'rel err':>8}"]
        lines += [f"{l:>5} {c:>8.5f} {m:>8.5f} {e:>8.5f}"
                  for l, (c, m, e) in enumerate(zip(self.cosine, self.cosine_min, self.rel_error))]
        return "\n".join(lines)


def variant_of(model: HookedModel, name: str) -> HookedModel:
    """The reference's weights under a named transform, wrapped in its own bridge."""
    from transformers import AutoModelForCausalLM

    from workbench.interp.hooks import HookedModel as HM
    from workbench.interp.hooks import ModelRef

    if name not in VARIANTS:
        raise InterpError(f"unknown variant {name!r}: use one of {', '.join(VARIANTS)} or --other SPEC")
    # A fresh copy: the reference's HF modules are already wrapped by its bridge.
    hf = AutoModelForCausalLM.from_pretrained(str(model.ref.checkpoint), dtype=torch.float32,
                                              attn_implementation="eager").eval()
    ref = ModelRef(f"{model.ref.spec}+{name}", model.ref.checkpoint, model.ref.sha256)
    return HM(VARIANTS[name](hf), model.tokenizer, ref)


@torch.no_grad()
def run(reference: HookedModel, variant: HookedModel, prompts: Sequence[str] = DEFAULT_PROMPTS,
            source: dict[str, Any] | None = None) -> DriftResult:
    if reference.n_layers != variant.n_layers:
        raise InterpError(f"{reference.spec} has {reference.n_layers} layers, {variant.spec} {variant.n_layers}")
    if reference.tokenizer.get_vocab() != variant.tokenizer.get_vocab():
        raise InterpError(f"{reference.spec} and {variant.spec} have different vocabularies; drift compares "
                          "variants of one model on the same token ids")
    names = [resid_name(l, "post") for l in range(reference.n_layers)]
    cos, rel, agree, dmax, toks = [], [], [], 0.0, []
    for prompt in prompts:
        ids = reference.tokenize(prompt)
        toks.append(ids[0])
        la, ca = reference.run_with_cache(ids, names)
        lb, cb = variant.run_with_cache(ids, names)
        a = torch.stack([ca[n][0] for n in names]).float()
        b = torch.stack([cb[n][0] for n in names]).float()
        cos.append(torch.nn.functional.cosine_similarity(a, b, dim=-1))
        rel.append((b - a).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-12))
        agree.append(la[0].argmax(-1) == lb[0].argmax(-1))
        dmax = max(dmax, float((la - lb).abs().max()))
    c, r, g = torch.cat(cos, dim=1), torch.cat(rel, dim=1), torch.cat(agree)
    meta = make_meta("drift", reference, prompts, [], {"site": act_name("resid_post", "{l}"), "variant": variant.spec}, source)
    meta.tokens = [reference.token_strings(t) for t in toks]
    return DriftResult(meta=meta, reference=reference.spec, variant=variant.spec,
                       cosine=c.mean(1).numpy().astype(np.float32), cosine_min=c.min(1).values.numpy().astype(np.float32),
                       rel_error=r.mean(1).numpy().astype(np.float32), top1_agreement=float(g.float().mean()),
                       max_abs_dlogit=dmax, n_tokens=int(g.numel()))


def _from_cli(a: Any, p: Any, model: HookedModel) -> dict[str, Any]:
    from workbench.interp.hooks import load_hooked

    if bool(a.variant) == bool(a.other):
        raise InterpError("give exactly one of --variant NAME or --other SPEC")
    other = variant_of(model, a.variant) if a.variant else load_hooked(a.other)
    return dict(variant=other, prompts=p.texts or DEFAULT_PROMPTS)


TOOL = register_tool(Tool(
    name="drift", run=run, prompt="many",
    help="per-layer cosine similarity and relative error of residual streams between a model and a variant (a "
         "named transform or another spec) on the same prompts",
    args=(arg("--variant", help="named variant of the reference: int8-dynamic, int8-dynamic-per-channel, bf16-weights"),
          arg("--other", help="another model spec with the same tokenizer")),
    from_cli=_from_cli,
))
