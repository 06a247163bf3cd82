"""Probes: planted signal is found, random labels are not; layer picked on validation; text baseline."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from workbench.interp import probe
from workbench.interp.errors import InterpError
from workbench.interp.probe import (
    _positive_floats,
    activations,
    select_layer,
    split,
    split3,
    text_baseline,
    train_probes,
)
from workbench.interp.probe_data import available, load_dataset


def test_planted_direction_found_and_control_at_chance():
    rng = np.random.default_rng(0)
    n, d = 400, 16
    labels = rng.integers(0, 2, n)
    noise = rng.normal(size=(2, n, d))
    noise[1, :, 0] += 3.0 * (2 * labels - 1)      # layer 1 carries the label on dimension 0
    table, w, b = train_probes(noise, labels, np.arange(n), seed=0)
    assert table.loc[1, "accuracy"] > 0.9 and table.loc[0, "accuracy"] < 0.65
    assert table.loc[1, "val_accuracy"] > 0.9 and select_layer(table) == 1
    assert abs(table.loc[1, "control_accuracy"] - 0.5) < 0.12
    assert table.loc[0, "ci95_low"] < table.loc[0, "accuracy"] < table.loc[0, "ci95_high"]
    assert np.argmax(np.abs(w[1])) == 0 and w.shape == (2, d)
    assert (table["n_train"] + table["n_val"] + table["n_test"] == n).all()


def test_c_grid_flag_takes_positive_numbers():
    assert _positive_floats("0.01, 1,10") == [0.01, 1.0, 10.0]
    with pytest.raises(argparse.ArgumentTypeError, match="must be in"):
        _positive_floats("0.1,-1")


def test_layer_is_selected_on_validation_not_test():
    table = pd.DataFrame({"layer": [0, 1, 2], "val_accuracy": [0.6, 0.8, 0.8], "accuracy": [0.9, 0.7, 0.75]})
    assert select_layer(table) == 1   # best on validation (earliest on a tie), though layer 0 is best on test


def test_group_splits_keep_groups_together():
    groups = np.repeat(np.arange(50), 2)
    train, test = split(groups, test_size=0.3, seed=0)
    assert not set(groups[train]) & set(groups[test])
    labels = np.tile([0, 1], 50)
    tr, va, te = split3(groups, labels, val_size=0.2, test_size=0.3, seed=0)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(100))
    assert len(set(groups[te])) == 15 and len(set(groups[va])) == 10
    for a, b in ((tr, va), (tr, te), (va, te)):
        assert not set(groups[a]) & set(groups[b])
    with pytest.raises(InterpError, match="sum below 1"):
        split3(groups, labels, val_size=0.5, test_size=0.5, seed=0)
    with pytest.raises(InterpError, match="lost a class"):
        split3(np.arange(100), np.r_[np.zeros(97), np.ones(3)].astype(int), val_size=0.2, test_size=0.3, seed=0)


def test_text_baseline_reads_surface_words_only():
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta"]
    labels = rng.integers(0, 2, 300)
    filler = [" ".join(rng.choice(words, 5)) for _ in labels]
    groups = np.arange(300)
    splits = split3(groups, labels, val_size=0.2, test_size=0.3, seed=0)
    marked = text_baseline([f"{f} {'yes' if y else 'no'}" for f, y in zip(filler, labels)], labels, groups, splits)
    assert marked["accuracy"] == 1.0 and marked["n_test"] == len(splits[2])
    blind = text_baseline(filler, labels, groups, splits)
    assert abs(blind["accuracy"] - 0.5) < 0.15 and blind["C"] > 0   # chance: 90 test items


def test_declared_datasets_build_from_the_real_mirror(real_data_dir):
    assert {"truthfulqa", "harmful", "harmful_xstest", "sentiment_synthetic"} <= set(available())
    for name in available():
        ds = load_dataset(name, real_data_dir)
        assert len(ds.texts) == len(ds.labels) == len(ds.groups) > 50
        assert set(ds.labels.tolist()) == {0, 1}
    tqa = load_dataset("truthfulqa", real_data_dir)
    assert (np.bincount(tqa.groups) == 2).all()   # a true and a false statement per question


def test_padded_batches_equal_single_prompts(tiny_hooked):
    texts = ["The quick brown fox", "Which organ pumps blood? The heart", "True"]
    batched = activations(tiny_hooked, texts, batch_size=3)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(batched[:, i], activations(tiny_hooked, [t])[:, 0], rtol=0, atol=1e-5)
    mean = activations(tiny_hooked, texts, pool="mean", batch_size=3)
    assert mean.shape == batched.shape


def test_probe_end_to_end_on_tiny(tiny_hooked, real_data_dir):
    res = probe.run(tiny_hooked, "sentiment_synthetic", data_dir=real_data_dir)
    by = res.by_layer
    assert list(by["layer"]) == list(range(tiny_hooked.n_layers))
    assert np.allclose(by["selectivity"], by["accuracy"] - by["control_accuracy"])
    assert res.selection == "validation" and res.best_layer == select_layer(by)
    assert set(by["C"]) <= set(res.meta.params["C"])
    split_ = res.meta.params["split"]
    assert len(split_["test"]) == by.loc[0, "n_test"] == res.text_baseline["n_test"]
    assert "text-only baseline" in res.summary()
    with pytest.raises(InterpError, match="C values must be positive"):
        probe.run(tiny_hooked, "sentiment_synthetic", C=[0.0], data_dir=real_data_dir)


@pytest.mark.slow
def test_smollm2_truthfulqa_probe_against_text_baseline(smol_hooked, real_data_dir):
    res = probe.run(smol_hooked, "truthfulqa", data_dir=real_data_dir)
    print(res.summary())
    best = res.by_layer.set_index("layer").loc[res.best_layer]
    assert best.val_accuracy == res.by_layer["val_accuracy"].max()
    assert best.ci95_low <= best.accuracy <= best.ci95_high
    # the surface-form effect the baseline exists for: answer wording alone predicts truth above chance
    assert res.text_baseline["accuracy"] > 0.5
