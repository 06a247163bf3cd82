"""Activation patching: identity, zero-effect and full-restore properties; batching; AtP."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.interp import patching as P
from workbench.interp.errors import InterpError, TokenError

CLEAN, CORRUPT = "The heart pumps blood", "The lung pumps blood"
# Patched rows run in batches of up to 32, the reference metric in a batch of 1: same maths, possibly
# a different summation order, so equality is asserted to float32 round-off.
ATOL = 1e-5


def _setup(model, clean=CLEAN, corrupt=CORRUPT):
    m = P.make_metric(model, "logit_diff", " the", " a")
    return m, model.tokenize(clean), model.tokenize(corrupt)


def _diff_positions(a, b):
    return [i for i, (x, y) in enumerate(zip(a[0].tolist(), b[0].tolist())) if x != y]


@pytest.mark.parametrize("family", list(P.FAMILIES))
def test_identity_clean_to_clean_gives_clean_metric_everywhere(tiny_hooked, family):
    m, clean, _ = _setup(tiny_hooked)
    with torch.no_grad():
        ref = float(m(tiny_hooked.logits(clean))[0])
    grid = P.exact_patch(tiny_hooked, clean, clean, m, P.FAMILIES[family], batch_size=7)
    assert grid.shape == P.FAMILIES[family].shape(tiny_hooked, clean.shape[-1])
    np.testing.assert_allclose(grid, ref, rtol=0, atol=ATOL)


def test_zero_effect_before_first_difference_and_full_restore(tiny_hooked):
    m, clean, corrupt = _setup(tiny_hooked)
    diff = _diff_positions(clean, corrupt)
    assert diff and diff[0] > 0
    with torch.no_grad():
        c, k = float(m(tiny_hooked.logits(clean))[0]), float(m(tiny_hooked.logits(corrupt))[0])
    assert abs(c - k) > 1e-3
    grid = P.exact_patch(tiny_hooked, clean, corrupt, m, P.FAMILIES["resid_pre"])
    # Positions before the first differing token see identical activations in both runs (causality).
    np.testing.assert_allclose(grid[:, :diff[0]], k, rtol=0, atol=ATOL)
    # The whole residual stream at any layer determines everything after it: full restore everywhere.
    whole = P.Family("resid_whole", "resid_pre", "whole")
    np.testing.assert_allclose(P.exact_patch(tiny_hooked, clean, corrupt, m, whole), c, rtol=0, atol=ATOL)


def test_heads_together_equal_attention_output(tiny_hooked):
    m, clean, corrupt = _setup(tiny_hooked)
    attn = P.exact_patch(tiny_hooked, clean, corrupt, m, P.FAMILIES["attn_out"])
    _, cache = tiny_hooked.run_with_cache(clean, ["blocks.1.attn.hook_z"], need_logits=False)
    with torch.no_grad():
        logits = tiny_hooked.run_with_hooks(corrupt, [("blocks.1.attn.hook_z", lambda t, hook: cache["blocks.1.attn.hook_z"])])
    assert float(m(logits)[0]) == pytest.approx(attn[1], abs=ATOL)


@pytest.mark.parametrize("family", list(P.FAMILIES))
@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_batched_sweep_equals_per_cell_loop(tiny_hooked, family, batch_size):
    """Rows resuming at their own block, in chunks that span layers, equal one full hooked forward per cell."""
    m, clean, corrupt = _setup(tiny_hooked)
    fam = P.FAMILIES[family]
    naive = P.exact_patch_naive(tiny_hooked, clean, corrupt, m, fam)
    assert np.ptp(naive) > 1e-3  # the grid is not flat: a wrong row order would show
    np.testing.assert_allclose(P.exact_patch(tiny_hooked, clean, corrupt, m, fam, batch_size=batch_size), naive,
                               rtol=0, atol=ATOL)


def test_atp_is_exact_where_nothing_differs_and_tracks_exact(tiny_hooked):
    res = P.run(tiny_hooked, CLEAN, CORRUPT, answer=" the", wrong=" a")
    clean, corrupt = tiny_hooked.tokenize(CLEAN), tiny_hooked.tokenize(CORRUPT)
    first = _diff_positions(clean, corrupt)[0]
    np.testing.assert_allclose(res.grid("resid_pre", "atp")[:, :first], res.corrupt_metric, atol=ATOL)
    # The layer-0 embedding patch is where AtP is first-order exact only if the model were linear; it
    # must at least point the same way as exact patching there.
    assert np.sign(res.effect("resid_pre", "atp")[0, first]) == np.sign(res.effect("resid_pre")[0, first])
    assert set(res.correlation) == {"resid_pre", "attn_out", "mlp_out", "head", "all"}
    assert all(-1 <= r <= 1 for r in res.correlation.values())


def test_patching_bad_input(tiny_hooked):
    with pytest.raises(InterpError, match="same number of tokens"):
        P.run(tiny_hooked, CLEAN, "The heart pumps blood and more", answer=" the", wrong=" a")
    with pytest.raises(InterpError, match="wrong answer"):
        P.run(tiny_hooked, CLEAN, CORRUPT, answer=" the")
    with pytest.raises(TokenError):
        P.run(tiny_hooked, CLEAN, CORRUPT, answer=" xylophone quartet", wrong=" a")
    with pytest.raises(InterpError, match="unknown patch site"):
        P.run(tiny_hooked, CLEAN, CORRUPT, answer=" the", wrong=" a", families=["nope"])


@pytest.mark.slow
def test_smollm2_patching_identity_and_atp(smol_hooked):
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Mary and John went to the store, Mary gave a drink to"
    m, c, k = _setup(smol_hooked, clean, corrupt)
    m = P.make_metric(smol_hooked, "logit_diff", " Mary", " John")
    with torch.no_grad():
        ref = float(m(smol_hooked.logits(c))[0])
    grid = P.exact_patch(smol_hooked, c, c, m, P.FAMILIES["attn_out"])
    np.testing.assert_allclose(grid, ref, rtol=0, atol=1e-4)
    res = P.run(smol_hooked, clean, corrupt, answer=" Mary", wrong=" John", families=["attn_out", "mlp_out"])
    print(f"SmolLM2 IOI: clean {res.clean_metric:.3f} corrupt {res.corrupt_metric:.3f} AtP r {res.correlation}")
    assert res.clean_metric > res.corrupt_metric
