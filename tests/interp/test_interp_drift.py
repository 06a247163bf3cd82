"""Drift: a model against itself has none; int8 quantization has a little."""
from __future__ import annotations

import numpy as np

from workbench.interp import drift
from workbench.interp.drift import variant_of


def test_self_comparison_has_no_drift(tiny_hooked):
    res = drift.run(tiny_hooked, tiny_hooked, ["The quick brown fox", "True"])
    np.testing.assert_allclose(res.cosine, 1.0, atol=1e-6)
    np.testing.assert_allclose(res.rel_error, 0.0, atol=1e-6)
    assert res.top1_agreement == 1.0 and res.max_abs_dlogit == 0.0


def test_int8_variant_drifts_a_little(tiny_hooked):
    q = variant_of(tiny_hooked, "int8-dynamic")
    res = drift.run(tiny_hooked, q, ["The quick brown fox jumps over the lazy dog."])
    assert res.cosine.shape == (tiny_hooked.n_layers,)
    assert (res.rel_error > 0).all() and (res.cosine > 0.99).all() and res.max_abs_dlogit > 0
