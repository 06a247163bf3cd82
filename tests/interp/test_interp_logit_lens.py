"""Logit lens: the last layer's lens is the model's own prediction."""
from __future__ import annotations

import pytest
import torch

from workbench.interp import logit_lens
from workbench.interp.logit_lens import layer_logits


def _final_layer_matches(model, prompt):
    ids = model.tokenize(prompt)
    lensed = layer_logits(model, ids, [ids.shape[-1] - 1])[-1, 0]
    with torch.no_grad():
        ref = model.logits(ids)[0, -1]
    torch.testing.assert_close(lensed, ref, rtol=0, atol=1e-4)


def test_tiny_last_layer_lens_equals_logits(tiny_hooked):
    _final_layer_matches(tiny_hooked, "The quick brown fox")
    res = logit_lens.run(tiny_hooked, "The quick brown fox", k=3, target=" the", positions=[0, -1])
    assert len(res.top) == tiny_hooked.n_layers * 2 * 3
    assert res.target_prob.shape == res.target_rank.shape == (tiny_hooked.n_layers, 2)
    top1 = res.top[(res.top["rank"] == 0)]
    assert (top1["prob"] >= res.top.groupby(["layer", "position"])["prob"].max().values - 1e-9).all()


@pytest.mark.slow
def test_smollm2_lens(smol_hooked):
    _final_layer_matches(smol_hooked, "The capital of France is")
    res = logit_lens.run(smol_hooked, "The capital of France is", k=5, target=" Paris")
    assert res.target_rank[-1, -1] == 0  # the model's own top token (known: ' Paris')
