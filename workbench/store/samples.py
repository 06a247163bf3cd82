"""The per-sample schema of a run (`samples.parquet`): which columns are metrics, which metric is a
scope's headline, and which way each metric is better. Every reader (stats, compare, gate, report,
dashboard) asks here rather than guessing."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

Direction = Literal["higher", "lower", "zero"]

# Columns every run has that are not scores.
ID_COLUMNS = ("task", "group", "subset", "doc_id")
TEXT_COLUMNS = ("prompt", "target", "target_text", "prompt_hash", "doc", "choices", "loglikelihoods",
                "is_greedy", "prediction", "generation")
# Per-sample numbers that describe an answer but are not scores with a better direction (calibration's
# `confidence` feeds the ECE aggregate; its mean is shown beside accuracy, never paired on its own).
AUX_COLUMNS = ("confidence",)
NON_METRIC = frozenset(ID_COLUMNS + TEXT_COLUMNS + AUX_COLUMNS)

# lm-eval's usual headline metrics, in order of preference, when a task does not declare its own.
PRIMARY_METRICS = ("acc", "exact_match", "pass@1", "mc2", "acc_norm", "f1", "refusal")
# Directions of the metrics we define (lm-eval's `higher_is_better` is recorded per task for the rest).
_LOWER = frozenset({"over_refusal", "rep_3gram", "word_perplexity", "byte_perplexity", "bits_per_byte",
                    "perplexity", "ece", "brier"})
_ZERO_PREFIXES = ("bias_",)  # signed bias scores: 0 = unbiased
# Metrics that say "right" or "wrong" per item (the sample explorer's "correct" column).
CORRECTNESS = frozenset({"acc", "acc_norm", "exact_match", "pass@1", "mc1", "acc_ambig", "acc_disambig"})


# A metric aggregated as a ratio of sums (lm-eval's weighted_perplexity, bits_per_byte, weighted_mean) keeps
# each item's own value in its column and the item's numerator and denominator beside it.
PART_SEPARATOR = "|"


def ratio_parts(metric: str) -> tuple[str, str]:
    """The columns holding a ratio metric's per-item numerator and denominator."""
    return f"{metric}{PART_SEPARATOR}num", f"{metric}{PART_SEPARATOR}den"


def is_metric_column(name: str) -> bool:
    return (name not in NON_METRIC and not name.startswith("prediction,") and not name.startswith("exec_")
            and PART_SEPARATOR not in name)


def metric_columns(df: Any) -> list[str]:
    """The numeric score columns of a samples frame, in frame order."""
    return [c for c in df.columns if is_metric_column(c) and df[c].dtype.kind in "fiub"]


def base_metric(name: str) -> str:
    """`exact_match,strict-match` -> `exact_match` (lm-eval's metric,filter naming)."""
    return name.split(",", 1)[0]


def _rank(metric: str) -> int:
    base = base_metric(metric)
    return PRIMARY_METRICS.index(base) if base in PRIMARY_METRICS else len(PRIMARY_METRICS)


def order_metrics(metrics: Iterable[str], declared: str | None = None) -> list[str]:
    """Metrics with the headline first: the task's declared primary metric, else lm-eval's usual order."""
    ms = list(dict.fromkeys(metrics))
    return sorted(ms, key=lambda m: (m != declared, _rank(m)))


def primary_metric(metrics: Iterable[str], declared: str | None = None) -> str | None:
    """The metric a scope is judged on (None if it has none)."""
    ordered = order_metrics(metrics, declared)
    return ordered[0] if ordered else None


def direction(metric: str, recorded: Mapping[str, str] | None = None) -> Direction:
    """Which way `metric` is better: recorded in the run's manifest, else known here, else higher."""
    base = base_metric(metric)
    if base.startswith(_ZERO_PREFIXES):
        return "zero"
    if recorded and (metric in recorded or base in recorded):
        value = recorded.get(metric, recorded.get(base))
        if value in ("higher", "lower", "zero"):
            return value  # type: ignore[return-value]
    return "lower" if base in _LOWER else "higher"


def directions_from_lm_eval(higher_is_better: Mapping[str, Any]) -> dict[str, Direction]:
    """A task's `higher_is_better()` as recorded directions (our own table wins for our metrics)."""
    out: dict[str, Direction] = {}
    for name, hib in higher_is_better.items():
        ours = direction(name)
        out[name] = ours if ours != "higher" else ("higher" if hib else "lower")
    return out


def better(delta: float, metric: str, recorded: Mapping[str, str] | None = None) -> bool | None:
    """Is a change of `delta` an improvement? None for zero-centred metrics (depends on the sign of both)."""
    d = direction(metric, recorded)
    if d == "zero" or delta != delta:
        return None
    return delta > 0 if d == "higher" else delta < 0


def is_correctness(metric: str) -> bool:
    return base_metric(metric) in CORRECTNESS


def fmt(value: Any, spec: str = ".3f", missing: str = "–") -> str:
    """A number for people: `missing` for None/NaN, else formatted with `spec`."""
    if value is None:
        return missing
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return missing if math.isnan(v) else format(v, spec)
