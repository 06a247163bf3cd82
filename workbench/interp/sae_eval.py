"""`workbench interp sae eval --sae ID`: evaluate a stored SAE on held-out text, as the SAE literature does.

Fraction of variance explained, L0, dead and dense latents, and cross-entropy with the SAE's
reconstruction spliced into the forward pass against the clean model and the zero-ablated site
(loss recovered); see `workbench.interp.sae.evaluate`. Text: the mirror's held-out documents (never in
a collected `train` corpus), or a user's file or directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.argtypes import int_at_least
from workbench.interp.artifacts import Meta, register_kind
from workbench.interp.hooks import HookedModel
from workbench.interp.sae import describe_evaluation, evaluate, heldout_batches, load_sae
from workbench.interp.tools import Tool, arg, register_tool
from workbench.settings import DATA_HELP


@register_kind("sae_eval")
@dataclass
class SaeEvalResult:
    meta: Meta
    sae_id: str
    site: str
    metrics: dict[str, float]       # n_tokens, n_sinks, fvu, fvu_with_sinks, variance_explained, l0, dead, dense, ce_clean, ce_sae, ce_zero,
                                    # loss_recovered
    frequency: np.ndarray           # [latents] share of evaluation tokens each latent fires on

    def summary(self) -> str:
        return f"SAE {self.sae_id} at {self.site}\n" + describe_evaluation(self.metrics)


def run(model: HookedModel, *, sae: str, tokens: int = 4096, corpus: str = "mirror", split: str | None = None,
        max_len: int = 256, artifacts: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None, source: dict[str, Any] | None = None) -> SaeEvalResult:
    r = load_sae(sae, artifacts, model)
    split = split or ("heldout" if corpus == "mirror" else "all")
    data = heldout_batches(model, tokens=tokens, corpus=corpus, split=split, max_len=max_len, data_dir=data_dir)
    skip_first = bool(r.meta.params.get("skip_first", True))
    max_norm = r.meta.params.get("max_norm")
    ev = evaluate(model, r.sae(), r.site, data, skip_first=skip_first, max_norm=max_norm)
    meta = Meta(kind="sae_eval", model=dict(r.meta.model), prompts=[], tokens=[], source=source,
                params={"sae": sae, "site": r.site, "tokens": tokens, "corpus": corpus, "split": split,
                        "max_len": max_len, "skip_first": skip_first, "max_norm": max_norm, "dense_above": 0.1,
                        "loss_recovered": "(CE_zero - CE_sae) / (CE_zero - CE_clean)"})
    return SaeEvalResult(meta=meta, sae_id=sae, site=r.site, metrics=ev.scalars(), frequency=ev.frequency)


TOOL = register_tool(Tool(
    name="sae_eval", cli="sae eval", run=run, prompt="none",
    help="evaluate a stored SAE on held-out text: variance explained, L0, dead/dense latents, and loss recovered with "
         "its reconstruction spliced into the forward pass (vs clean and zero-ablated)",
    args=(arg("--sae", required=True, help="the SAE's artifact id"),
          arg("--tokens", type=int_at_least(1), default=4096, help="evaluation tokens (default 4096)"),
          arg("--corpus", default="mirror", help="`mirror` (its held-out split) or a text/JSONL file or directory"),
          arg("--split", choices=["train", "heldout", "all"],
              help="document split of the text (default: heldout for the mirror, all for a file)"),
          arg("--max-len", type=int_at_least(2), default=256, help="tokens kept per document (default 256)"),
          arg("--data-dir", help=DATA_HELP)),
    from_cli=lambda a, p, m: dict(sae=a.sae, tokens=a.tokens, corpus=a.corpus, split=a.split, max_len=a.max_len,
                                  artifacts=a.artifacts, data_dir=a.data_dir),
))
