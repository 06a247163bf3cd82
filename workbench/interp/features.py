"""SAE feature explanations: what each latent of a stored SAE responds to, from a stored activation corpus.

As `neurons`, for the latents of an `sae` artifact: top-activating contexts with the latent's activation
on every token of the window, a histogram of its non-zero activations and its density (share of
tokens in its top k), the tokens it fires on most, and the direct logit effect of its decoder
direction (through the final norm's gain and the unembedding; for an SAE on `mlp_neurons`, through the
MLP's output weight first). With `--explain-with SPEC`, a judge model also writes an explanation of
the strongest latents and is scored by simulation (`workbench.interp.explain`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from workbench.argtypes import int_at_least
from workbench.interp.artifacts import Meta, register_kind
from workbench.interp.collect import open_corpus
from workbench.interp.hooks import HookedModel
from workbench.interp.sae import dense_encoder, load_sae
from workbench.interp.sites import SITES, parse_hook
from workbench.interp.tools import Tool, arg, register_tool
from workbench.interp.units import UnitTables, logit_effects, neuron_directions, scan, unit_summary
from workbench.settings import ACTIVATIONS_HELP


@register_kind("features")
@dataclass(kw_only=True)
class FeaturesResult(UnitTables):
    meta: Meta
    sae_id: str

    unit_name = "feature"

    def summary(self) -> str:
        alive = self.stats[self.stats["n_fired"] > 0]
        top = alive.sort_values("n_fired", ascending=False)["unit"].head(5).tolist()
        lines = [f"{len(self.stats)} features of SAE {self.sae_id} ({self.site}) over {self.n_tokens:,} tokens of "
                 f"corpus {self.corpus_id}: {len(alive)} fire at least once; the 5 most frequent:",
                 *unit_summary(self, top)]
        if self.explanations is not None and len(self.explanations):
            e = self.explanations
            lines.append(f"judge explanations ({e['judge'].iloc[0]}): mean simulation correlation {e['score'].mean():.3f} "
                         f"vs {e['control_score'].mean():.3f} for another feature's explanation")
        return "\n".join(lines)


def run(model: HookedModel, *, sae: str, corpus: str | None = None, top: int = 20, window: int = 12,
        bins: int = 40, logit_k: int = 10, explain_with: str | None = None, explain: int = 5,
        artifacts: str | os.PathLike | None = None, activations: str | os.PathLike | None = None,
        source: dict[str, Any] | None = None) -> FeaturesResult:
    r = load_sae(sae, artifacts, model)
    coder = r.sae()
    c = open_corpus(model, r.site, corpus or r.corpus_id, activations)
    s = scan(c, r.site, int(coder.num_latents), model.token_strings, encode=dense_encoder(coder), top=top,
             before=window, after=max(window // 3, 1), bins=bins, positive_hist=True,
             skip_first=bool(r.meta.params.get("skip_first", True)), max_norm=r.meta.params.get("max_norm"))
    site, layer = parse_hook(r.site)
    directions = coder.W_dec.detach().float()
    if SITES.get(site).space == "neurons":
        directions = directions @ neuron_directions(model, layer)
    logits = logit_effects(model, directions, k=logit_k)
    explanations = None
    if explain_with:
        from workbench.interp.explain import explain_units

        ranked = s.stats[s.stats["n_fired"] > 0].sort_values("max", ascending=False)["unit"].head(explain).tolist()
        explanations = explain_units(explain_with, s.contexts, ranked, random_contexts=s.random_contexts,
                                     random_acts=s.random_acts, unit_name="feature")
    meta = Meta(kind="features", model=dict(r.meta.model), prompts=[], tokens=[], source=source,
                params={"sae": sae, "site": r.site, "corpus": c.id, "top": top, "window": window, "bins": bins,
                        "logit_k": logit_k, "explain_with": explain_with, "explain": explain if explain_with else 0,
                        "density": "share of tokens where the latent is in the top k with activation > 0",
                        "logit_effect": "W_dec row (through W_out for mlp_neurons) * final-norm gain @ W_U (direct path)"})
    return FeaturesResult(meta=meta, sae_id=sae, corpus_id=c.id, layer=layer, site=r.site, logits=logits,
                          explanations=explanations, **s.tables())


TOOL = register_tool(Tool(
    name="features", run=run, prompt="none",
    help="explain every latent of a stored SAE from an activation corpus: top-activating contexts, histogram and "
         "density, the tokens it fires on most, the decoder direction's logit effect; optional judge explanations",
    args=(arg("--sae", required=True, help="the SAE's artifact id"),
          arg("--corpus", help="activation corpus id (default: the one the SAE was trained on)"),
          arg("--top", type=int_at_least(1), default=20, help="top contexts kept per feature (default 20)"),
          arg("--window", type=int_at_least(0), default=12, help="tokens shown before the top token (default 12)"),
          arg("--bins", type=int_at_least(2), default=40, help="histogram bins (default 40)"),
          arg("--explain-with", metavar="SPEC", help="a judge model (any registered backend, e.g. openai:URL) that "
                                                     "writes and is scored on explanations"),
          arg("--explain", type=int_at_least(1), default=5, help="features the judge explains (default 5)"),
          arg("--activations", help=ACTIVATIONS_HELP)),
    from_cli=lambda a, p, m: dict(sae=a.sae, corpus=a.corpus, top=a.top, window=a.window, bins=a.bins,
                                  explain_with=a.explain_with, explain=a.explain, artifacts=a.artifacts,
                                  activations=a.activations),
))
