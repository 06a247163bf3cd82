"""Automatic explanations of units, after Bills et al. (2023), with any registered model as the judge.

For each unit the judge sees its top-activating contexts (every other one: ranks 0, 2, 4, ...; the
activating token marked << >>) and completes "the {unit} fires on ...". It is then scored by
simulation: for held-out contexts (the other top ranks and as many random corpus contexts, which
mostly do not activate the unit) the judge is asked, given only the explanation, how strongly the unit
fires on the marked token, 0-9; its prediction is the expected digit under its own probabilities
(lm-eval `loglikelihood` of " 0" ... " 9"). The score is the Pearson correlation between predictions
and the unit's true activations on the marked tokens. This is Bills et al.'s "all at once" scoring
reduced to one token per context. A control score simulates the same contexts with another unit's
explanation: a judge whose score does not beat its control is not explaining anything.

The embedded models (135M / 270M parameters) are far too small to be useful judges; the measured
numbers say so. A larger model behind an `openai:` server is the way to useful explanations.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from workbench.interp.errors import InterpError

log = logging.getLogger(__name__)
EXPLAIN = ("We are studying one {unit} of a language model. Below are text excerpts where it activates strongly; the "
           "token where it activates is marked with << >>.\n\n{examples}\n\nComplete the sentence with a short "
           "description of what the {unit} responds to.")
EXPLAIN_LEAD = "The {unit} fires on"
SIMULATE = ("A {unit} of a language model fires on {explanation}\n\nText: {text}\n\nOn a scale from 0 (not at all) to "
            "9 (strongly), how strongly does the {unit} fire on the token marked << >>?")
DIGITS = [str(i) for i in range(10)]


def marked(tokens: list[str], center: int, limit: int = 400) -> str:
    """The window's text with its center token marked << >>."""
    text = "".join(tokens[:center]) + "<<" + tokens[center] + ">>" + "".join(tokens[center + 1:])
    return text.replace("\n", " ")[-limit:]


class Judge:
    """A model spec used as explainer and simulator (in its chat template when it has one)."""

    def __init__(self, spec: str) -> None:
        from workbench.eval.models import load_model

        self.spec = spec
        self.lm = load_model(spec)

    def _wrap(self, text: str, lead: str) -> str:
        template = getattr(self.lm, "apply_chat_template", None)
        if callable(template) and getattr(getattr(self.lm, "tokenizer", None), "chat_template", None):
            return template([{"role": "user", "content": text}]) + lead
        return f"{text}\n\n{lead}"

    def explain(self, unit_name: str, examples: list[str]) -> str:
        from lm_eval.api.instance import Instance

        lead = EXPLAIN_LEAD.format(unit=unit_name)
        ctx = self._wrap(EXPLAIN.format(unit=unit_name, examples="\n".join(f"- {e}" for e in examples)), lead)
        req = Instance("generate_until", {}, (ctx, {"until": ["\n", "."], "max_gen_toks": 24, "do_sample": False}), 0)
        text = self.lm.generate_until([req], disable_tqdm=True)[0].strip()
        return text or "(no explanation)"

    def simulate(self, unit_name: str, explanation: str, texts: list[str]) -> np.ndarray:
        """Expected 0-9 activation the judge predicts for the marked token of each text."""
        from lm_eval.api.instance import Instance

        reqs, i = [], 0
        for t in texts:
            ctx = self._wrap(SIMULATE.format(unit=unit_name, explanation=explanation.rstrip(".") + ".", text=t),
                             "Answer:")
            for d in DIGITS:
                reqs.append(Instance("loglikelihood", {}, (ctx, " " + d), i))
                i += 1
        ll = np.array([r[0] for r in self.lm.loglikelihood(reqs, disable_tqdm=True)]).reshape(len(texts), len(DIGITS))
        p = np.exp(ll - ll.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return p @ np.arange(len(DIGITS))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def explain_units(judge_spec: str, contexts: pd.DataFrame, units: list[int], *, random_contexts: pd.DataFrame,
                  random_acts: np.ndarray, unit_name: str = "feature", n_sim: int = 6,
                  judge: Any = None) -> pd.DataFrame:
    """unit, explanation, score, control_score, n_sim, judge for each unit (see the module's doc)."""
    if not units:
        raise InterpError("no units to explain")
    judge = judge or Judge(judge_spec)
    expl: dict[int, str] = {}
    sims: dict[int, tuple[list[str], np.ndarray]] = {}
    for u in units:
        ctx = contexts[contexts["unit"] == u].sort_values("rank")
        shown, held = ctx.iloc[::2], ctx.iloc[1::2].head(n_sim)
        expl[u] = judge.explain(unit_name, [marked(list(r.tokens), int(r.center)) for r in shown.itertuples()])
        rnd = random_contexts.head(n_sim)
        texts = [marked(list(r.tokens), int(r.center)) for r in held.itertuples()]
        texts += [marked(list(r.tokens), int(r.center)) for r in rnd.itertuples()]
        truth = np.concatenate([held["activation"].to_numpy(float), random_acts[u, : len(rnd)].astype(float)])
        sims[u] = (texts, truth)
        log.info("%s %d: %s", unit_name, u, expl[u])
    rows = []
    for j, u in enumerate(units):
        texts, truth = sims[u]
        other = expl[units[(j + 1) % len(units)]] if len(units) > 1 else "nothing in particular"
        score = _corr(judge.simulate(unit_name, expl[u], texts), truth)
        control = _corr(judge.simulate(unit_name, other, texts), truth)
        rows.append({"unit": u, "explanation": expl[u], "score": score, "control_score": control,
                     "n_sim": len(texts), "judge": judge_spec})
    return pd.DataFrame(rows, columns=["unit", "explanation", "score", "control_score", "n_sim", "judge"])


__all__ = ["Judge", "explain_units", "marked"]
