"""Which SAE features are over-represented on the items a model got wrong.

For the binary-scored items of a stored run (`--run`, optionally one `--task`, the first `--limit`),
each item's prompt runs to the SAE's layer and the latents active at the answer position (the last
prompt token) are recorded. Items fall into two groups: wrong (acc 0) vs right (acc 1); with
`--versus RUN_B` (same items), the items RUN_B got wrong that `--run` got right (its new failures) vs
the items both got right. For every latent active on at least `--min-items` items, a one-sided Fisher
exact test asks whether it fires on a larger share of the wrong items; the p-values are corrected
across the tested latents (`workbench.analysis.stats.adjust_pvalues`, Holm by default, or BH).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.analysis.stats import CORRECTIONS, adjust_pvalues
from workbench.argtypes import float_in, int_at_least
from workbench.interp.artifacts import Meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.sae import dense_encoder, load_sae
from workbench.interp.tools import Tool, arg, register_tool
from workbench.interp.top_units import _explanations, _top_tokens
from workbench.settings import STORE_HELP


@register_kind("failure_features")
@dataclass
class FailureFeaturesResult:
    meta: Meta
    sae_id: str
    runs: list[str]
    n_wrong: int
    n_right: int
    tests: pd.DataFrame      # feature, wrong_fired, right_fired, wrong_rate, right_rate, odds_ratio, p, p_adjusted,
                             # significant, wrong_mean, right_mean, top_tokens
    items: pd.DataFrame      # task, doc_id, group, top_features, top_acts
    explained_by: str = ""

    def summary(self) -> str:
        c = self.meta.params.get("correction")
        lines = [f"SAE {self.sae_id}: {self.n_wrong} wrong vs {self.n_right} right items ({' vs '.join(self.runs)}); "
                 f"{len(self.tests)} features tested, {int(self.tests['significant'].sum())} over-represented on wrong "
                 f"items after {c} correction (alpha {self.meta.params.get('alpha')})"]
        for r in self.tests.head(10).itertuples():
            lines.append(f"  #{r.feature:<6} wrong {r.wrong_fired}/{self.n_wrong} vs right {r.right_fired}/{self.n_right}"
                         f"  p {r.p:.2g}  adj {r.p_adjusted:.2g}{'  *' if r.significant else ''}  {r.top_tokens}")
        return "\n".join(lines)


def _items(run: str, task: str | None, store: Any) -> pd.DataFrame:
    from workbench.store import RunStore

    df = RunStore(store).load(run).samples
    if task is not None:
        df = df[df["task"] == task]
        if df.empty:
            raise InterpError(f"run {run} has no samples of task {task!r}")
    if "acc" not in df:
        raise InterpError(f"run {run} has no binary `acc` column to split right from wrong items")
    df = df[df["acc"].isin([0, 1])]
    return df.assign(doc_id=df["doc_id"].astype(str)).set_index(["task", "doc_id"])


def groups(run: str, versus: str | None, task: str | None, limit: int | None, store: Any) -> pd.DataFrame:
    """task, doc_id, prompt, wrong (bool) for the items compared."""
    a = _items(run, task, store)
    if versus:
        b = _items(versus, task, store)
        shared = a.index.intersection(b.index)
        if not len(shared):
            raise InterpError(f"runs {run} and {versus} share no binary-scored items")
        a, b = a.loc[shared], b.loc[shared]
        keep = a["acc"] == 1
        out = pd.DataFrame({"prompt": a["prompt"], "wrong": b["acc"] == 0})[keep]
    else:
        out = pd.DataFrame({"prompt": a["prompt"], "wrong": a["acc"] == 0})
    out = out.reset_index()
    if limit:
        out = out.head(limit)
    if out["wrong"].all() or not out["wrong"].any():
        raise InterpError(f"need both wrong and right items to compare; got {int(out['wrong'].sum())} wrong of {len(out)}")
    return out


@torch.no_grad()
def run(model: HookedModel, *, run: str, sae: str, versus: str | None = None, task: str | None = None,
        limit: int | None = None, min_items: int = 3, correction: str = "holm", alpha: float = 0.05,
        store: str | os.PathLike | None = None, artifacts: str | os.PathLike | None = None,
        source: dict[str, Any] | None = None) -> FailureFeaturesResult:
    r = load_sae(sae, artifacts, model)
    coder = r.sae()
    encode = dense_encoder(coder)
    items = groups(run, versus, task, limit, store)
    z = np.zeros((len(items), coder.num_latents), dtype=np.float32)
    for i, prompt in enumerate(items["prompt"]):
        tokens = model.tokenize(prompt)
        _, cache = model.run_with_cache(tokens, [r.site], need_logits=False)
        z[i] = encode(cache[r.site][0, -1:].float())[0].numpy()
    fires = z > 0
    wrong = items["wrong"].to_numpy(bool)
    rows = _fisher(fires, z, wrong, min_items)
    tests = pd.DataFrame(rows, columns=["feature", "wrong_fired", "right_fired", "wrong_rate", "right_rate", "odds_ratio",
                                        "p", "wrong_mean", "right_mean"])
    tests["p_adjusted"] = adjust_pvalues(tests["p"].to_numpy(), correction) if len(tests) else []
    tests["significant"] = tests["p_adjusted"] < alpha
    link, ctx = _explanations("features", model, artifacts, {"sae": sae})
    tests["top_tokens"] = [_top_tokens(ctx, int(f)) for f in tests["feature"]]
    tests = tests.sort_values(["p", "feature"]).reset_index(drop=True)
    order = np.argsort(-z, axis=1)[:, :10]
    item_rows = pd.DataFrame({"task": items["task"], "doc_id": items["doc_id"],
                              "group": np.where(wrong, "wrong", "right"),
                              "top_features": [o[z[i, o] > 0].tolist() for i, o in enumerate(order)],
                              "top_acts": [z[i, o][z[i, o] > 0].round(4).tolist() for i, o in enumerate(order)]})
    meta = Meta(kind="failure_features", model=dict(r.meta.model), prompts=[], tokens=[], source=source,
                params={"run": run, "versus": versus, "task": task, "limit": limit, "sae": sae, "site": r.site,
                        "min_items": min_items, "correction": correction, "alpha": alpha,
                        "test": "one-sided Fisher exact (fires on a larger share of wrong items)",
                        "fires": "latent active at the last prompt token",
                        "groups": "wrong in --versus and right in --run vs right in both" if versus else
                                  "acc 0 vs acc 1 in --run"})
    return FailureFeaturesResult(meta=meta, sae_id=sae, runs=[run] + ([versus] if versus else []),
                                 n_wrong=int(wrong.sum()), n_right=int((~wrong).sum()), tests=tests, items=item_rows,
                                 explained_by=link)


def _fisher(fires: np.ndarray, z: np.ndarray, wrong: np.ndarray, min_items: int) -> list[dict[str, Any]]:
    from scipy.stats import fisher_exact

    nw, nr = int(wrong.sum()), int((~wrong).sum())
    rows = []
    for f in np.nonzero(fires.sum(0) >= min_items)[0]:
        a, c = int(fires[wrong, f].sum()), int(fires[~wrong, f].sum())
        odds, p = fisher_exact([[a, nw - a], [c, nr - c]], alternative="greater")
        rows.append({"feature": int(f), "wrong_fired": a, "right_fired": c, "wrong_rate": a / nw, "right_rate": c / nr,
                     "odds_ratio": float(odds), "p": float(p), "wrong_mean": float(z[wrong, f].mean()),
                     "right_mean": float(z[~wrong, f].mean())})
    return rows


TOOL = register_tool(Tool(
    name="failure_features", run=run, aliases=("failures",), prompt="none",
    help="SAE features over-represented on the items a run got wrong (or that a second run newly got wrong): "
         "one-sided Fisher exact tests, corrected for multiple testing",
    args=(arg("--run", required=True, help="the stored run"),
          arg("--versus", metavar="RUN_B", help="compare RUN_B's new failures (wrong in RUN_B, right in --run)"),
          arg("--sae", required=True, help="the SAE's artifact id"),
          arg("--task", help="only this task's items"),
          arg("--limit", type=int_at_least(1), help="the first N items"),
          arg("--min-items", type=int_at_least(1), default=3, help="test features active on at least N items (default 3)"),
          arg("--correction", choices=[c for c in CORRECTIONS if c != "none"], default="holm",
              help="multiple-testing correction (default holm)"),
          arg("--alpha", type=float_in(0, 1, low_open=True, high_open=True), default=0.05),
          arg("--store", help=STORE_HELP)),
    from_cli=lambda a, p, m: dict(run=a.run, versus=a.versus, sae=a.sae, task=a.task, limit=a.limit,
                                  min_items=a.min_items, correction=a.correction, alpha=a.alpha, store=a.store,
                                  artifacts=a.artifacts),
))
