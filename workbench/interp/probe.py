"""Linear probes per layer: does layer l's residual stream linearly encode a label?

The items are split (group-aware) into train, validation and test. For each layer, a standardised
logistic regression is trained on `blocks.{l}.hook_resid_post` (the last token, or the mean over
tokens) of the train split, its C chosen from a grid on validation; the reported layer is the one
with the best validation accuracy, and its test accuracy (cluster-bootstrap 95% CI over groups) is
the headline, so neither the layer nor C is picked on the items it is scored on. Two references
share the same splits: a control probe trained and tested on randomly permuted labels (what
capacity alone buys; selectivity = accuracy - control accuracy) and a text-only baseline, a TF-IDF
bag-of-words logistic regression on the texts themselves (what surface form alone buys; on
SmolLM2's TruthfulQA set it equals the probe at the selected layer and beats most layers).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.analysis.stats import clustered_estimate
from workbench.argtypes import float_in, int_at_least, path, rng_seed
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, act_name, resid_name
from workbench.interp.probe_data import ProbeDataset, load_dataset
from workbench.interp.tools import Tool, arg, register_tool
from workbench.settings import DATA_HELP

POOLS = ("last", "mean")
PROBE_C = (0.001, 0.01, 0.1, 1.0)   # inverse L2 strengths tried per layer (standardised features)
TEXT_C = (0.1, 1.0, 10.0, 100.0)    # for the text baseline (L2-normalised TF-IDF rows)
TEXT_FEATURES = "TF-IDF of word 1-2-grams (sublinear tf, fit on the train split)"
Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


@register_kind("probe")
@dataclass
class ProbeResult:
    meta: Meta
    dataset: str
    pool: str
    # layer, C, val_accuracy, accuracy (test), ci95_low, ci95_high, stderr, control_accuracy, selectivity,
    # n_train, n_val, n_test (artifacts saved before validation have no C, val_accuracy, n_val)
    by_layer: pd.DataFrame
    weights: np.ndarray      # [layer, d_model] probe direction in raw residual coordinates
    bias: np.ndarray         # [layer]
    best_layer: int          # the layer picked on `selection`
    # Added with the validation split; the defaults describe artifacts saved before it.
    selection: str = "test"  # the split best_layer was picked on
    text_baseline: dict[str, Any] | None = None  # features, C, val_accuracy, accuracy, ci95_low, ci95_high, n_test

    def summary(self) -> str:
        by = self.by_layer.set_index("layer")
        best = by.loc[self.best_layer]
        lines = [f"probe {self.dataset} ({self.pool} token), layer {self.best_layer} picked on the {self.selection} split: "
                 f"test accuracy {best.accuracy:.3f} [{best.ci95_low:.3f}, {best.ci95_high:.3f}], control "
                 f"{best.control_accuracy:.3f}, selectivity {best.selectivity:+.3f}"]
        if self.text_baseline:
            t = self.text_baseline
            lines.append(f"text-only baseline (bag of words): test accuracy {t['accuracy']:.3f} "
                         f"[{t['ci95_low']:.3f}, {t['ci95_high']:.3f}]; probe - baseline {best.accuracy - t['accuracy']:+.3f}")
        val = "val_accuracy" in by.columns
        lines.append(f"{'layer':>5} {'val':>6} {'test':>6} {'95% CI':>15} {'control':>8} {'select.':>8}" if val else
                     f"{'layer':>5} {'test':>6} {'95% CI':>15} {'control':>8} {'select.':>8}")
        lines += [f"{l:>5} " + (f"{r.val_accuracy:>6.3f} " if val else "") + f"{r.accuracy:>6.3f} [{r.ci95_low:.3f}, "
                  f"{r.ci95_high:.3f}] {r.control_accuracy:>8.3f} {r.selectivity:>+8.3f}" for l, r in by.iterrows()]
        return "\n".join(lines)


@torch.no_grad()
def activations(model: HookedModel, texts: list[str], *, pool: str = "last", batch_size: int = 16) -> np.ndarray:
    """Pooled resid_post per layer [layer, n, d_model].

    Prompts of different lengths are right-padded: under causal attention no real token attends to
    a later pad, so real positions are exact without a mask.
    """
    if pool not in POOLS:
        raise InterpError(f"unknown pooling {pool!r}: use one of {', '.join(POOLS)}")
    names = [resid_name(l, "post") for l in range(model.n_layers)]
    ids = [model.tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    for row in ids:
        model.check_length(len(row))
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    out = np.zeros((model.n_layers, len(texts), model.d_model), dtype=np.float32)
    order = np.argsort([len(r) for r in ids])
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        lens = torch.tensor([len(ids[i]) for i in batch])
        tokens = torch.full((len(batch), int(lens.max())), pad, dtype=torch.long)
        for j, i in enumerate(batch):
            tokens[j, :lens[j]] = torch.tensor(ids[i])
        _, cache = model.run_with_cache(tokens, names, need_logits=False)
        acts = torch.stack([cache[n] for n in names]).float()   # [layer, b, pos, d]
        if pool == "last":
            pooled = acts[:, torch.arange(len(batch)), lens - 1]
        else:
            mask = (torch.arange(tokens.shape[1])[None, :] < lens[:, None]).float()
            pooled = (acts * mask[None, :, :, None]).sum(2) / lens[None, :, None]
        out[:, batch] = pooled.numpy()
    return out


def split(groups: np.ndarray, *, test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with every group on one side (test_size: a fraction, or a number of groups)."""
    from sklearn.model_selection import GroupShuffleSplit

    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    return next(gss.split(np.zeros(len(groups)), groups=groups))


def split3(groups: np.ndarray, labels: np.ndarray, *, val_size: float, test_size: float, seed: int) -> Splits:
    """Train/validation/test indices (fractions of all groups), every group on one side; each split has both labels."""
    if not (val_size > 0 and test_size > 0 and val_size + test_size < 1):
        raise InterpError(f"validation and test sizes must be positive and sum below 1 (got {val_size}, {test_size})")
    n_groups = len(np.unique(groups))
    n_test, n_val = (max(1, round(f * n_groups)) for f in (test_size, val_size))
    if n_test + n_val >= n_groups:
        raise InterpError(f"{n_groups} groups are too few for a train, validation and test split; use more examples")
    rest, test = split(groups, test_size=n_test, seed=seed)
    tr, va = split(groups[rest], test_size=n_val, seed=seed)
    splits = (rest[tr], rest[va], test)
    for name, idx in zip(("train", "validation", "test"), splits):
        if len(set(labels[idx].tolist())) < 2:
            raise InterpError(f"the {name} split lost a class ({len(idx)} items); use more examples")
    return splits


def fit_layer(x: np.ndarray, y: np.ndarray, train: np.ndarray, *, C: float, seed: int) -> tuple[np.ndarray, float]:
    """(weights, bias) of a standardised logistic probe fit on `train`, in raw coordinates."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(scaler.transform(x[train]), y[train])
    w = clf.coef_[0] / scaler.scale_
    b = float(clf.intercept_[0] - (clf.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    return w, b


def correct(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Per-item correctness (0/1) of the linear probe (w, b) on features x."""
    return ((x @ w + b > 0).astype(np.int64) == y).astype(float)


def train_probes(feats: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, splits: Splits | None = None,
                 val_size: float = 0.2, test_size: float = 0.3, C: Sequence[float] = PROBE_C,
                 seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per-layer table (C and accuracy picked on validation, test accuracy, control, selectivity), weights, biases."""
    train, val, test = splits if splits is not None else split3(groups, labels, val_size=val_size,
                                                                  test_size=test_size, seed=seed)
    control = np.random.default_rng(seed).permutation(labels)
    rows, ws, bs = [], [], []
    for layer in range(feats.shape[0]):
        x = feats[layer]
        fits = [(c, *fit_layer(x, labels, train, C=c, seed=seed)) for c in C]
        val_acc = [correct(x[val], labels[val], w, b).mean() for _, w, b in fits]
        c, w, b = fits[int(np.argmax(val_acc))]
        est = clustered_estimate(correct(x[test], labels[test], w, b), groups[test], seed=seed)
        cw, cb = fit_layer(x, control, train, C=c, seed=seed)
        ctrl = float(correct(x[test], control[test], cw, cb).mean())
        rows.append({"layer": layer, "C": c, "val_accuracy": float(max(val_acc)), "accuracy": est.value,
                     "ci95_low": est.ci95_low, "ci95_high": est.ci95_high, "stderr": est.stderr,
                     "control_accuracy": ctrl, "selectivity": est.value - ctrl,
                     "n_train": len(train), "n_val": len(val), "n_test": len(test)})
        ws.append(w)
        bs.append(b)
    return pd.DataFrame(rows), np.stack(ws).astype(np.float32), np.asarray(bs, dtype=np.float32)


def select_layer(table: pd.DataFrame) -> int:
    """The layer with the best validation accuracy (the earliest on a tie)."""
    return int(table.loc[table["val_accuracy"].idxmax(), "layer"])


def text_baseline(texts: Sequence[str], labels: np.ndarray, groups: np.ndarray, splits: Splits, *,
                  C: Sequence[float] = TEXT_C, seed: int = 0) -> dict[str, Any]:
    """A bag-of-words logistic regression on the texts alone, C picked on validation, scored on test."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, val, test = splits
    texts = np.asarray(texts, dtype=object)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts[train])
    xs = {k: vec.transform(texts[idx]) for k, idx in (("train", train), ("val", val), ("test", test))}
    fits = [LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xs["train"], labels[train]) for c in C]
    val_acc = [float((f.predict(xs["val"]) == labels[val]).mean()) for f in fits]
    best = int(np.argmax(val_acc))
    est = clustered_estimate((fits[best].predict(xs["test"]) == labels[test]).astype(float), groups[test], seed=seed)
    return {"features": TEXT_FEATURES, "C": float(C[best]), "val_accuracy": val_acc[best], "accuracy": est.value,
            "ci95_low": est.ci95_low, "ci95_high": est.ci95_high, "stderr": est.stderr, "n_test": len(test)}


def run(model: HookedModel, dataset: str | ProbeDataset, *, pool: str = "last", val_size: float = 0.2,
          test_size: float = 0.3, C: Sequence[float] = PROBE_C, seed: int = 0, batch_size: int = 16,
          data_dir: str | os.PathLike | None = None, source: dict[str, Any] | None = None) -> ProbeResult:
    """Per-layer probes on `dataset`; the layer is picked on validation and reported on test beside the baselines."""
    ds = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    C = [float(c) for c in C]
    if not C or min(C) <= 0:
        raise InterpError(f"C values must be positive (got {C})")
    splits = split3(ds.groups, ds.labels, val_size=val_size, test_size=test_size, seed=seed)
    feats = activations(model, ds.texts, pool=pool, batch_size=batch_size)
    table, w, b = train_probes(feats, ds.labels, ds.groups, splits=splits, C=C, seed=seed)
    baseline = text_baseline(ds.texts, ds.labels, ds.groups, splits, seed=seed)
    meta = make_meta("probe", model, ds.texts, [], {"dataset": ds.name, "declaration": ds.spec, "pool": pool,
                                                   "val_size": val_size, "test_size": test_size, "C": C,
                                                   "text_C": list(TEXT_C), "seed": seed,
                                                   "site": act_name("resid_post", "{l}"), "labels": ds.labels.tolist(),
                                                   "split": {k: v.tolist() for k, v in zip(("train", "val", "test"), splits)},
                                                   "selection": "layer and C by validation accuracy",
                                                   "control": "labels randomly permuted (seeded)"}, source)
    return ProbeResult(meta=meta, dataset=ds.name, pool=pool, by_layer=table, weights=w, bias=b,
                       best_layer=select_layer(table), selection="validation", text_baseline=baseline)


def _positive_floats(value: str) -> list[float]:
    """argparse type: comma-separated positive numbers."""
    parse = float_in(0, 1e9, low_open=True)
    return [parse(v) for v in value.split(",") if v.strip()]


TOOL = register_tool(Tool(
    name="probe", run=run, prompt="none",
    help="linear probes per layer on a labelled dataset declared in probes/*.yaml: layer and C picked on a validation "
         "split, test accuracy with 95% CI, a random-label control (selectivity) and a text-only bag-of-words "
         "baseline on the same splits",
    args=(arg("--dataset", required=True, help="probe dataset name (probes/<name>.yaml)"),
          arg("--pool", default="last", choices=["last", "mean"], help="token pooling (default last)"),
          arg("--val-size", type=float_in(0, 1, low_open=True, high_open=True), default=0.2,
              help="fraction of groups for validation (default 0.2)"),
          arg("--test-size", type=float_in(0, 1, low_open=True, high_open=True), default=0.3,
              help="fraction of groups for test (default 0.3)"),
          arg("--C", type=_positive_floats, default=list(PROBE_C),
              help="inverse L2 strengths of the logistic probe, picked per layer on validation "
                   f"(default {','.join(f'{c:g}' for c in PROBE_C)})"),
          arg("--seed", type=rng_seed, default=0),
          arg("--batch-size", type=int_at_least(1), default=16),
          arg("--data-dir", type=path, help=DATA_HELP)),
    from_cli=lambda a, p, m: dict(dataset=a.dataset, pool=a.pool, val_size=a.val_size, test_size=a.test_size,
                                  C=a.C, seed=a.seed, batch_size=a.batch_size, data_dir=a.data_dir),
))
