"""Linear probes per layer: does layer l's residual stream linearly encode a label?

For each layer, a standardised logistic regression is trained on `blocks.{l}.hook_resid_post` (the last
token, or the mean over tokens) of a train split and scored on held-out prompts (group-aware split),
with a bootstrap 95% CI. A control probe trained and tested on randomly permuted labels gives the
accuracy that capacity alone buys; selectivity = accuracy - control accuracy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.analysis.stats import mean_estimate
from workbench.argtypes import float_in, int_at_least, path, rng_seed
from workbench.interp.artifacts import Meta, make_meta, register_kind
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel, resid_name
from workbench.interp.probe_data import ProbeDataset, load_dataset
from workbench.interp.tools import Tool, arg, register_tool
from workbench.settings import DATA_HELP

POOLS = ("last", "mean")


@register_kind("probe")
@dataclass
class ProbeResult:
    meta: Meta
    dataset: str
    pool: str
    by_layer: pd.DataFrame   # layer, accuracy, ci95_low, ci95_high, control_accuracy, selectivity, n_train, n_test
    weights: np.ndarray      # [layer, d_model] probe direction in raw residual coordinates
    bias: np.ndarray         # [layer]
    best_layer: int

    def summary(self) -> str:
        lines = [f"probe {self.dataset} ({self.pool} token), best layer {self.best_layer}",
                 f"{'layer':>5} {'acc':>6} {'95% CI':>15} {'control':>8} {'select.':>8}"]
        lines += [f"{r.layer:>5} {r.accuracy:>6.3f} [{r.ci95_low:.3f}, {r.ci95_high:.3f}] {r.control_accuracy:>8.3f} "
                  f"{r.selectivity:>+8.3f}" for r in self.by_layer.itertuples()]
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


def split(groups: np.ndarray, *, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with every group on one side."""
    from sklearn.model_selection import GroupShuffleSplit

    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    return next(gss.split(np.zeros(len(groups)), groups=groups))


def fit_layer(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, *, C: float,
              seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(per-test-item correctness, weights, bias) of a standardised logistic probe; weights in raw coordinates."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(scaler.transform(x[train]), y[train])
    correct = (clf.predict(scaler.transform(x[test])) == y[test]).astype(float)
    w = clf.coef_[0] / scaler.scale_
    b = float(clf.intercept_[0] - (clf.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    return correct, w, b


def train_probes(feats: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, test_size: float = 0.3,
                 C: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per-layer accuracy table (with control and selectivity), probe weights [layer, d] and biases."""
    train, test = split(groups, test_size=test_size, seed=seed)
    if len(set(labels[train])) < 2 or len(set(labels[test])) < 2:
        raise InterpError("the train/test split lost a class; use more examples")
    control = np.random.default_rng(seed).permutation(labels)
    rows, ws, bs = [], [], []
    for layer in range(feats.shape[0]):
        correct, w, b = fit_layer(feats[layer], labels, train, test, C=C, seed=seed)
        ctrl, _, _ = fit_layer(feats[layer], control, train, test, C=C, seed=seed)
        est = mean_estimate(correct, seed=seed)
        rows.append({"layer": layer, "accuracy": est.value, "ci95_low": est.ci95_low, "ci95_high": est.ci95_high,
                     "stderr": est.stderr, "control_accuracy": float(ctrl.mean()),
                     "selectivity": est.value - float(ctrl.mean()), "n_train": len(train), "n_test": len(test)})
        ws.append(w)
        bs.append(b)
    return pd.DataFrame(rows), np.stack(ws).astype(np.float32), np.asarray(bs, dtype=np.float32)


def probe(model: HookedModel, dataset: str | ProbeDataset, *, pool: str = "last", test_size: float = 0.3,
          C: float = 1.0, seed: int = 0, batch_size: int = 16, data_dir: str | os.PathLike | None = None,
          source: dict[str, Any] | None = None) -> ProbeResult:
    ds = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    feats = activations(model, ds.texts, pool=pool, batch_size=batch_size)
    table, w, b = train_probes(feats, ds.labels, ds.groups, test_size=test_size, C=C, seed=seed)
    meta = make_meta("probe", model, ds.texts, [], {"dataset": ds.name, "declaration": ds.spec, "pool": pool,
                                                   "test_size": test_size, "C": C, "seed": seed,
                                                   "site": "blocks.{l}.hook_resid_post", "labels": ds.labels.tolist(),
                                                   "control": "labels randomly permuted (seeded)"}, source)
    return ProbeResult(meta=meta, dataset=ds.name, pool=pool, by_layer=table, weights=w, bias=b,
                       best_layer=int(table["accuracy"].idxmax()))


TOOL = register_tool(Tool(
    name="probe", run=probe, prompt="none",
    help="linear probes per layer on a labelled dataset declared in probes/*.yaml: held-out accuracy with 95% CI "
         "and a random-label control (selectivity)",
    args=(arg("--dataset", required=True, help="probe dataset name (probes/<name>.yaml)"),
          arg("--pool", default="last", choices=["last", "mean"], help="token pooling (default last)"),
          arg("--test-size", type=float_in(0, 1, low_open=True, high_open=True), default=0.3),
          arg("--C", type=float_in(0, 1e9, low_open=True), default=1.0, help="inverse L2 strength of the logistic probe"),
          arg("--seed", type=rng_seed, default=0),
          arg("--batch-size", type=int_at_least(1), default=16),
          arg("--data-dir", type=path, help=DATA_HELP)),
    from_cli=lambda a, p, m: dict(dataset=a.dataset, pool=a.pool, test_size=a.test_size, C=a.C, seed=a.seed,
                                  batch_size=a.batch_size, data_dir=a.data_dir),
))
