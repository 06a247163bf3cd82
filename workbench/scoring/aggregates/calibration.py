"""Calibration of multiple-choice answers (HELM's calibration metrics, on lm-eval's log-likelihoods).

Per sample: `confidence`, the softmax over the choices' log-likelihoods at the answer the model picked
(the argmax, as lm-eval's `acc`), and `brier`, the Brier score of that confidence as a forecast of the
answer being right, (confidence - acc)^2 (top-label, as LLM calibration work reports it next to ECE;
ECE is its calibration term). Kept only for tasks whose own `acc` is that argmax's correctness on every
sample, so a task that scores otherwise (TruthfulQA MC2's probability mass) gets neither.

Over the items: `ece`, the expected calibration error with 10 equal-mass bins as HELM reports it
(`ece_10_bin`: the `calibration` package's get_ece_em, top-label, plug-in L1 estimate), and
`selective_acc@0.5`, the accuracy on the half of the items the model is most confident about.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.scoring.aggregates import aggregate_metric

CONFIDENCE = "confidence"
CORRECT = "acc"
N_BINS = 10
COVERAGE = 0.5


def choice_probabilities(loglikelihoods: Sequence[float]) -> np.ndarray:
    """Softmax over the choices' log-likelihoods."""
    ll = np.asarray(loglikelihoods, dtype=float)
    p = np.exp(ll - ll.max())
    return p / p.sum()


def _golds(target: Any, choices: Sequence[str]) -> list[int] | None:
    """Gold choice indices as lm-eval reads a multiple-choice target (index, list of indices or choice text)."""
    items = target if isinstance(target, (list, tuple)) else [target]
    out = []
    for t in items:
        if isinstance(t, str):
            if t not in choices:
                return None
            t = list(choices).index(t)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < len(choices):
            return None
        out.append(int(t))
    return out or None


def sample_fields(loglikelihoods: Sequence[float], choices: Sequence[str], target: Any, acc: Any) -> dict[str, float]:
    """`confidence` and `brier` for one multiple-choice sample, or {} when its `acc` is not a 0/1 score of
    the argmax answer (a continuous `acc`, or 0 for an argmax that is a target)."""
    if len(loglikelihoods) != len(choices) or len(choices) < 2:
        return {}
    try:
        correct = float(acc)
    except (TypeError, ValueError):
        return {}
    probs = choice_probabilities(loglikelihoods)
    pred = int(np.argmax(loglikelihoods))
    golds = _golds(target, choices)
    # Tasks may accept several answers (BBQ's ten "unknown" phrasings), so a right argmax off the
    # target is allowed; a wrong one on it is not.
    if correct not in (0.0, 1.0) or (golds and pred in golds and correct == 0.0) or not np.isfinite(probs).all():
        return {}
    confidence = float(probs[pred])
    return {CONFIDENCE: confidence, "brier": (confidence - correct) ** 2}


def whole_tasks(df: Any) -> Any:
    """Keep a task's calibration columns only where every one of its samples has them: a task whose `acc`
    is not the argmax's correctness on some samples (TruthfulQA MC2's probability mass can round to 1.0)
    is not scored by the argmax, and gets no calibration at all."""
    for col in (CONFIDENCE, "brier"):
        if col in df.columns:
            partial = df.groupby("task", sort=False)[col].transform(lambda x: x.isna().any())
            df.loc[partial.astype(bool), col] = np.nan
    return df


def _sorted(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf, corr = np.atleast_2d(np.asarray(confidence, float)), np.atleast_2d(np.asarray(correct, float))
    order = np.argsort(conf, axis=1, kind="stable")
    return np.take_along_axis(conf, order, 1), np.take_along_axis(corr, order, 1)


def equal_mass_edges(sorted_conf: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Per row, where each of the equal-mass bins ends in the sorted confidences, shape (batch, bins + 1).

    As the `calibration` package HELM uses: the sorted confidences are split into `n_bins` near-equal
    parts (fewer if there are fewer items), a boundary sits midway between neighbouring parts, and an
    item falls in the first bin whose boundary is >= its confidence (so equal values share a bin).
    """
    b, n = sorted_conf.shape
    m = min(n_bins, n)
    sizes = np.full(m, n // m)
    sizes[: n % m] += 1
    starts = np.cumsum(sizes)[:-1]
    bounds = (sorted_conf[:, starts - 1] + sorted_conf[:, starts]) / 2
    inner = (sorted_conf[:, None, :] <= bounds[:, :, None]).sum(axis=2)
    return np.concatenate([np.zeros((b, 1), int), inner, np.full((b, 1), n)], axis=1)


@aggregate_metric("ece", (CONFIDENCE, CORRECT))
def ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Expected calibration error, 10 equal-mass bins (HELM's ece_10_bin); lower is better."""
    conf, corr = _sorted(confidence, correct)
    edges = equal_mass_edges(conf, n_bins)
    gap = np.concatenate([np.zeros((conf.shape[0], 1)), np.cumsum(conf - corr, axis=1)], axis=1)
    per_bin = np.diff(np.take_along_axis(gap, edges, 1), axis=1)
    return np.abs(per_bin).sum(axis=1) / conf.shape[1]


@aggregate_metric(f"selective_acc@{COVERAGE}", (CONFIDENCE, CORRECT))
def selective_accuracy(confidence: np.ndarray, correct: np.ndarray, coverage: float = COVERAGE) -> np.ndarray:
    """Accuracy on the ceil(0.5 n) most confident items (ties in item order); higher is better."""
    conf, corr = np.atleast_2d(np.asarray(confidence, float)), np.atleast_2d(np.asarray(correct, float))
    k = max(1, math.ceil(coverage * conf.shape[1]))
    order = np.argsort(-conf, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(corr, order, 1).mean(axis=1)


def reliability_bins(confidence: Sequence[float], correct: Sequence[float], n_bins: int = N_BINS) -> list[dict[str, float]]:
    """The equal-mass bins behind `ece`: per bin its item count, mean confidence and accuracy."""
    conf, corr = np.asarray(confidence, float), np.asarray(correct, float)
    keep = ~(np.isnan(conf) | np.isnan(corr))
    if not keep.any():
        return []
    s, y = _sorted(conf[keep], corr[keep])
    edges = equal_mass_edges(s, n_bins)[0]
    return [{"n": int(hi - lo), "confidence": float(s[0, lo:hi].mean()), "accuracy": float(y[0, lo:hi].mean())}
            for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


__all__ = ["CONFIDENCE", "choice_probabilities", "ece", "reliability_bins", "sample_fields", "selective_accuracy",
           "whole_tasks"]
