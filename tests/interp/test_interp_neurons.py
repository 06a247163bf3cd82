"""Neuron explanations checked against brute force over the stored corpus and against the HF weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.interp import artifacts
from workbench.interp import neurons as N
from workbench.store.activations import ActivationStore


@pytest.fixture(scope="module")
def neurons(tiny_hooked, tiny_corpus, corpus_roots):
    r = N.run(tiny_hooked, layer=1, corpus=tiny_corpus.corpus_id, top=5, window=4, bins=10,
              activations=corpus_roots[0])
    aid = artifacts.save(r, corpus_roots[1])
    return artifacts.load(aid, corpus_roots[1])


@pytest.fixture(scope="module")
def stored(tiny_corpus):
    """All keys and layer-1 neuron activations of the corpus, concatenated (brute-force reference)."""
    c = ActivationStore(Path(tiny_corpus.path).parent).open(tiny_corpus.corpus_id)
    parts = [arr for _, arr in c.iter_shards(["tokens", "doc", "pos", "blocks.1.mlp.hook_post"])]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _scanned(stored):
    """The rows the neurons tool scans by default: every position but each document's first."""
    return stored["pos"] > 0


def test_top_contexts_statistics_and_histograms_match_brute_force(neurons, stored, tiny_hooked):
    x = stored["blocks.1.mlp.hook_post"].astype(np.float32)
    x_all, x = x, x[_scanned(stored)]
    n, width = x.shape
    assert neurons.n_tokens == n and len(neurons.stats) == width == 64
    np.testing.assert_allclose(neurons.stats["max"], x.max(0), rtol=1e-6)
    np.testing.assert_allclose(neurons.stats["density"], (x > 0).mean(0))
    assert (neurons.hist.sum(1) == n).all()
    for unit in (0, 17, 63):
        ctx = neurons.contexts[neurons.contexts["unit"] == unit].sort_values("rank")
        np.testing.assert_allclose(ctx["activation"], np.sort(x[:, unit])[::-1][:5], rtol=1e-6)
        for c in ctx.itertuples():
            row = np.nonzero((stored["doc"] == c.doc) & (stored["pos"] == c.pos))[0][0]
            assert c.token == tiny_hooked.token_strings([stored["tokens"][row]])[0]
            assert c.pos > 0 and c.acts[c.center] == pytest.approx(x_all[row, unit])
            assert c.center == min(4, c.pos)
            lo = row - c.center
            np.testing.assert_allclose(c.acts, x_all[lo:lo + len(c.acts), unit], rtol=1e-6)
            assert (stored["doc"][lo:lo + len(c.acts)] == c.doc).all()


def test_by_token_means_match_brute_force(neurons, stored):
    row = neurons.by_token.iloc[0]
    x = stored["blocks.1.mlp.hook_post"].astype(np.float32)
    on = (stored["tokens"] == row["token_id"]) & _scanned(stored)
    assert row["count"] == on.sum()
    means = x[on].mean(0)
    assert row["unit"] == int(means.argmax()) and row["mean_act"] == pytest.approx(means.max(), rel=1e-5)


def test_logit_effects_are_w_out_through_norm_gain_and_unembedding(neurons, tiny_hooked):
    hf = tiny_hooked.hf
    w_out = hf.get_decoder().layers[1].mlp.down_proj.weight.detach()          # [d_model, d_mlp]
    eff = (w_out[:, 5] * hf.get_decoder().norm.weight.detach()) @ hf.get_output_embeddings().weight.detach().T
    lg = neurons.logits[(neurons.logits["unit"] == 5)]
    promote = lg[lg["sign"] == "promote"].sort_values("rank")
    suppress = lg[lg["sign"] == "suppress"].sort_values("rank")
    assert promote["token_id"].tolist() == eff.topk(10).indices.tolist()
    assert suppress["token_id"].tolist() == (-eff).topk(10).indices.tolist()
    np.testing.assert_allclose(promote["value"], eff.topk(10).values.numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(tiny_hooked.bridge.blocks[1].mlp.W_out.detach(), w_out.T)


def test_random_contexts_carry_every_units_activation(neurons, stored):
    x = stored["blocks.1.mlp.hook_post"].astype(np.float32)
    assert len(neurons.random_contexts) == neurons.random_acts.shape[1] == 20
    for c in neurons.random_contexts.itertuples():
        row = np.nonzero((stored["doc"] == c.doc) & (stored["pos"] == c.pos))[0][0]
        np.testing.assert_allclose(neurons.random_acts[:, c.id], x[row], rtol=1e-6)
