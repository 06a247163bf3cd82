"""Repetition/degeneration metrics on generated text (the "repeater" failure mode).

Tokens are lower-cased whitespace words. distinct-n (Li et al., 2016) is the number of distinct
n-grams over the number of n-grams in one text; the repeated n-gram rate is the fraction of n-gram
occurrences that repeat an earlier n-gram of the same text (0 = no repetition, -> 1 = a loop).
Both are NaN for a text with fewer than n tokens.
"""
from __future__ import annotations


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    toks = text.lower().split()
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def distinct_n(text: str, n: int) -> float:
    grams = _ngrams(text, n)
    return len(set(grams)) / len(grams) if grams else float("nan")


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    grams = _ngrams(text, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else float("nan")


def degeneration_metrics(text: str) -> dict[str, float]:
    """distinct-1, distinct-2 and the repeated 3-gram rate of one text."""
    return {"distinct_1": distinct_n(text, 1), "distinct_2": distinct_n(text, 2), "rep_3gram": repeated_ngram_rate(text, 3)}
