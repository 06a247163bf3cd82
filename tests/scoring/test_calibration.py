"""Calibration metrics: ECE as HELM computes it, selective accuracy, Brier, and when a sample has them."""
from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from workbench.scoring import aggregates
from workbench.scoring.aggregates import calibration as cal


def _cases(seed: int = 0):
    """Confidences with ties, bootstrap-like duplicates and every size around the 10 bins."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 9, 10, 11, 19, 57, 250, 1000):
        for trial in range(12):
            conf = rng.random(n) * 0.75 + 0.25
            if trial % 3 == 0:
                conf = np.round(conf, 1)          # many exact ties across bin boundaries
            if trial % 4 == 1:
                conf = rng.choice(conf, n)        # duplicated items, as in a bootstrap resample
            correct = (rng.random(n) < conf).astype(int)
            yield conf, correct


def _ece_by_definition(probs, correct, num_bins=10) -> float:
    """Equal-mass ECE written out step by step from HELM's description: split the sorted confidences
    into num_bins near-equal parts, put a boundary midway between neighbouring parts, assign each item to
    the first boundary >= its confidence, and weight |mean confidence - accuracy| by bin size."""
    ordered = sorted(probs)
    parts = np.array_split(ordered, min(num_bins, len(ordered)))
    bounds = sorted({(a[-1] + b[0]) / 2 for a, b in zip(parts, parts[1:])} | {1.0})
    bins: dict[int, list] = {}
    for p, y in zip(probs, correct):
        bins.setdefault(bisect.bisect_left(bounds, p), []).append((p, y))
    return sum(len(b) / len(probs) * abs(np.mean([p for p, _ in b]) - np.mean([y for _, y in b])) for b in bins.values())


def test_ece_matches_the_calibration_package_helm_uses():
    import calibration as helm_cal  # uncertainty-calibration, HELM's calibration package (dev extra)

    for conf, correct in _cases():
        assert cal.ece(conf, correct)[0] == pytest.approx(helm_cal.get_ece_em(conf, correct, num_bins=10), abs=1e-12)


def test_ece_matches_its_definition_and_is_vectorised_over_rows():
    cases = list(_cases(1))
    for conf, correct in cases:
        assert cal.ece(conf, correct)[0] == pytest.approx(_ece_by_definition(list(conf), list(correct)), abs=1e-12)
    same = [(c, y) for c, y in cases if len(c) == 57]
    batch = cal.ece(np.stack([c for c, _ in same]), np.stack([y for _, y in same]))
    assert batch == pytest.approx([_ece_by_definition(list(c), list(y)) for c, y in same], abs=1e-12)
    # a perfectly calibrated set has ECE 0; always-wrong with confidence 1 has ECE 1
    assert cal.ece(np.full(20, 0.5), np.array([0, 1] * 10))[0] == pytest.approx(0.0)
    assert cal.ece(np.ones(20), np.zeros(20))[0] == pytest.approx(1.0)


def test_reliability_bins_are_the_ece_bins():
    for conf, correct in _cases(2):
        bins = cal.reliability_bins(conf, correct)
        assert sum(b["n"] for b in bins) == len(conf)
        weighted = sum(b["n"] / len(conf) * abs(b["confidence"] - b["accuracy"]) for b in bins)
        assert weighted == pytest.approx(cal.ece(conf, correct)[0], abs=1e-12)
        assert len(bins) <= 10


def test_selective_accuracy_is_accuracy_on_the_most_confident_half():
    conf = np.array([0.9, 0.2, 0.8, 0.3, 0.7, 0.1, 0.95])
    correct = np.array([1, 1, 0, 1, 1, 0, 1])
    k = math.ceil(0.5 * len(conf))                  # 4 most confident: 0.95, 0.9, 0.8, 0.7
    assert cal.selective_accuracy(conf, correct)[0] == pytest.approx(3 / 4)
    assert k == 4
    rng = np.random.default_rng(3)
    c, y = rng.random((6, 40)), (rng.random((6, 40)) < 0.5).astype(float)
    ref = [y[i][np.argsort(-c[i], kind="stable")[:20]].mean() for i in range(6)]
    assert cal.selective_accuracy(c, y) == pytest.approx(ref)


def test_sample_fields_follow_the_tasks_own_accuracy():
    lls = [-1.0, -2.0, -0.5, -3.0]
    p = np.exp(lls) / np.exp(lls).sum()
    right = cal.sample_fields(lls, ["a", "b", "c", "d"], 2, 1.0)     # argmax 2 is the gold
    assert right == pytest.approx({"confidence": p[2], "brier": (p[2] - 1) ** 2})
    wrong = cal.sample_fields(lls, ["a", "b", "c", "d"], 0, 0.0)
    assert wrong == pytest.approx({"confidence": p[2], "brier": p[2] ** 2})
    assert cal.sample_fields(lls, list("abcd"), "c", 1.0)["confidence"] == pytest.approx(p[2])   # target as text
    # BBQ accepts any of its "unknown" phrasings: a right argmax that is not doc_to_target's index
    assert cal.sample_fields(lls, list("abcd"), 1, 1.0) == pytest.approx({"confidence": p[2], "brier": (p[2] - 1) ** 2})
    # TruthfulQA MC2 stores the probability mass of the true answers as `acc`: not calibration's correctness
    assert cal.sample_fields(lls, list("abcd"), 0, 0.37) == {}
    assert cal.sample_fields(lls, list("abcd"), 2, 0.0) == {}       # acc says the argmax target is wrong
    assert cal.sample_fields(lls, list("abcd"), [0, 2], 0.0) == {}
    assert cal.sample_fields([-1.0], ["a"], 0, 1.0) == {}


def test_whole_tasks_drops_calibration_of_a_task_with_any_unscored_sample():
    import pandas as pd

    df = pd.DataFrame({"task": ["x", "x", "y", "y"], "confidence": [0.9, np.nan, 0.6, 0.7],
                       "brier": [0.01, np.nan, 0.16, 0.49]})
    out = cal.whole_tasks(df.copy())
    assert out.loc[out.task == "x", ["confidence", "brier"]].isna().all().all()
    assert out.loc[out.task == "y", "confidence"].tolist() == [0.6, 0.7]


def test_aggregates_registry_and_frames():
    import pandas as pd

    assert {"ece", "selective_acc@0.5"} <= set(aggregates.AGGREGATES.names())
    df = pd.DataFrame({"confidence": [0.9, 0.6, np.nan, 0.7], "acc": [1.0, 0.0, 1.0, 1.0]})
    assert set(aggregates.available(df)) == {"ece", "selective_acc@0.5"}
    assert aggregates.available(df[["acc"]]) == []
    est = aggregates.estimate("ece", df, n_boot=200)
    assert est.n == 3 and est.value == pytest.approx(cal.ece([0.9, 0.6, 0.7], [1, 0, 1])[0])
    assert est.ci95_low <= est.value <= est.ci95_high
