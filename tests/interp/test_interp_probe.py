"""Probes: planted signal is found, random labels are not; datasets build from the mirror."""
from __future__ import annotations

import numpy as np

from workbench.interp.probe import activations, probe, split, train_probes
from workbench.interp.probe_data import available, load_dataset


def test_planted_direction_found_and_control_at_chance():
    rng = np.random.default_rng(0)
    n, d = 400, 16
    labels = rng.integers(0, 2, n)
    noise = rng.normal(size=(2, n, d))
    noise[1, :, 0] += 3.0 * (2 * labels - 1)      # layer 1 carries the label on dimension 0
    table, w, b = train_probes(noise, labels, np.arange(n), seed=0)
    assert table.loc[1, "accuracy"] > 0.9 and table.loc[0, "accuracy"] < 0.65
    assert abs(table.loc[1, "control_accuracy"] - 0.5) < 0.12
    assert table.loc[0, "ci95_low"] < table.loc[0, "accuracy"] < table.loc[0, "ci95_high"]
    assert np.argmax(np.abs(w[1])) == 0 and w.shape == (2, d)


def test_group_split_keeps_groups_together():
    groups = np.repeat(np.arange(50), 2)
    train, test = split(groups, test_size=0.3, seed=0)
    assert not set(groups[train]) & set(groups[test])


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
    res = probe(tiny_hooked, "sentiment_synthetic", data_dir=real_data_dir)
    assert list(res.by_layer["layer"]) == list(range(tiny_hooked.n_layers))
    assert np.allclose(res.by_layer["selectivity"], res.by_layer["accuracy"] - res.by_layer["control_accuracy"])
