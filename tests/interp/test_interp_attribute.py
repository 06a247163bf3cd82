"""Integrated Gradients completeness and gradient x input."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.interp.attribute import attribute
from workbench.interp.errors import TokenError


def test_tiny_ig_completeness(tiny_hooked):
    res = attribute(tiny_hooked, "The quick brown fox jumps", " the", n_steps=32, internal_batch_size=8)
    assert res.ig.shape == res.grad_x_input.shape == (len(res.meta.tokens[0]),)
    assert res.ig[0] == 0.0  # position 0 is identical in input and baseline
    assert abs(res.delta) < 0.01 * abs(res.f_input - res.f_baseline)
    assert res.ig.sum() == pytest.approx(res.f_input - res.f_baseline, abs=0.01 * abs(res.f_input - res.f_baseline))


def test_target_not_in_vocabulary(tiny_hooked):
    with pytest.raises(TokenError, match="not a single token"):
        attribute(tiny_hooked, "The quick brown fox", " xylophone quartet")


@pytest.mark.slow
@pytest.mark.parametrize("prompt,target", [("The capital of France is", " Paris"),
                                           ("Which organ pumps blood? The", " heart")])
def test_smollm2_ig_completeness_within_one_percent(smol_hooked, prompt, target):
    res = attribute(smol_hooked, prompt, target, n_steps=64, internal_batch_size=16)
    print(f"SmolLM2 IG {prompt!r}->{target!r}: f(x)-f(b) {res.f_input - res.f_baseline:.4f} delta {res.delta:+.5f} "
          f"({100 * res.relative_delta:.3f}%)")
    assert res.relative_delta < 0.01
    assert np.isfinite(res.grad_x_input).all()
