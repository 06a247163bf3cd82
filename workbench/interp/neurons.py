"""Neuron explanations: what each MLP neuron of a layer responds to, from a stored activation corpus.

For every neuron of `blocks.{l}.mlp.hook_post` (the MLP's hidden activation): its top-activating
contexts (the token and a window around it, with the neuron's activation on each token; each
document's first token is left out unless asked, as for the SAEs), a histogram
of its activations and its density (share of tokens where it is > 0), the tokens it fires on most
(mean activation per frequent token), and its direct logit effect (its row of the output weight,
through the final norm's gain and the unembedding: the tokens it promotes and suppresses).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from workbench.argtypes import int_at_least
from workbench.interp.artifacts import Meta, register_kind
from workbench.interp.collect import open_corpus
from workbench.interp.hooks import HookedModel
from workbench.interp.sites import hook_name
from workbench.interp.tools import Tool, arg, register_tool
from workbench.interp.units import UnitTables, logit_effects, neuron_directions, scan, unit_summary
from workbench.settings import ACTIVATIONS_HELP


@register_kind("neurons")
@dataclass(kw_only=True)
class NeuronsResult(UnitTables):
    meta: Meta

    unit_name = "neuron"

    def summary(self) -> str:
        top = self.stats.sort_values("max", ascending=False)["unit"].head(5).tolist()
        return "\n".join([f"{len(self.stats)} neurons of layer {self.layer} over {self.n_tokens:,} tokens of corpus "
                          f"{self.corpus_id}; the 5 with the largest activation:", *unit_summary(self, top)])


def run(model: HookedModel, *, layer: int, corpus: str | None = None, top: int = 20, window: int = 12,
        bins: int = 40, logit_k: int = 10, skip_first: bool = True, explain_with: str | None = None,
        explain: int = 5,
        activations: str | os.PathLike | None = None,
        source: dict[str, Any] | None = None) -> NeuronsResult:
    hook = hook_name(model, "mlp_neurons", layer)
    c = open_corpus(model, hook, corpus, activations)
    width = c.sites[hook]
    s = scan(c, hook, width, model.token_strings, top=top, before=window, after=max(window // 3, 1), bins=bins,
             skip_first=skip_first)
    logits = logit_effects(model, neuron_directions(model, layer), k=logit_k)
    explanations = None
    if explain_with:
        from workbench.interp.explain import explain_units

        ranked = s.stats.sort_values("max", ascending=False)["unit"].head(explain).tolist()
        explanations = explain_units(explain_with, s.contexts, ranked, random_contexts=s.random_contexts,
                                     random_acts=s.random_acts, unit_name="neuron")
    meta = Meta(kind="neurons", model={"spec": model.spec, "sha256": model.ref.sha256,
                                       "checkpoint": str(model.ref.checkpoint)},
                prompts=[], tokens=[], source=source,
                params={"layer": layer, "site": hook, "corpus": c.id, "top": top, "window": window, "bins": bins,
                        "logit_k": logit_k, "skip_first": skip_first, "explain_with": explain_with, "explain": explain if explain_with else 0,
                        "density": "share of tokens with activation > 0",
                        "logit_effect": "W_out row * final-norm gain @ W_U (direct path)"})
    return NeuronsResult(meta=meta, corpus_id=c.id, layer=layer, site=hook, logits=logits, explanations=explanations,
                         **s.tables())


TOOL = register_tool(Tool(
    name="neurons", run=run, prompt="none",
    help="explain every MLP neuron of a layer from a stored activation corpus: top-activating contexts, histogram and "
         "density, the tokens it fires on most, and its direct logit effect",
    args=(arg("--layer", type=int, required=True, help="the layer"),
          arg("--corpus", help="activation corpus id (default: the newest of this model with the layer's neurons)"),
          arg("--top", type=int_at_least(1), default=20, help="top contexts kept per neuron (default 20)"),
          arg("--window", type=int_at_least(0), default=12, help="tokens shown before the top token (default 12)"),
          arg("--bins", type=int_at_least(2), default=40, help="histogram bins (default 40)"),
          arg("--include-first", action="store_true",
              help="also scan each document's first token (left out by default: its attention-sink activations "
                   "dwarf the rest)"),
          arg("--explain-with", metavar="SPEC", help="a judge model (any registered backend, e.g. openai:URL) that "
                                                     "writes and is scored on explanations"),
          arg("--explain", type=int_at_least(1), default=5, help="neurons the judge explains (default 5)"),
          arg("--activations", help=ACTIVATIONS_HELP)),
    from_cli=lambda a, p, m: dict(layer=a.layer, corpus=a.corpus, top=a.top, window=a.window, bins=a.bins,
                                  skip_first=not a.include_first, explain_with=a.explain_with, explain=a.explain, activations=a.activations),
))
