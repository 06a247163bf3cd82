"""Integrated Gradients: completeness within tolerance by step doubling, or a clear error; gradient x input."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.interp import attribution
from workbench.interp.attribution import IGNotConverged, step_schedule
from workbench.interp.errors import InterpError, TokenError


def _completeness_error(res) -> float:
    """From the stored attributions themselves, not Captum's delta."""
    return abs(float(res.ig.sum()) - (res.f_input - res.f_baseline)) / abs(res.f_input - res.f_baseline)


def test_tiny_ig_completeness(tiny_hooked):
    res = attribution.run(tiny_hooked, "The quick brown fox jumps", " the", n_steps=32, internal_batch_size=8)
    assert res.ig.shape == res.grad_x_input.shape == (len(res.meta.tokens[0]),)
    assert res.ig[0] == 0.0  # position 0 is identical in input and baseline
    assert _completeness_error(res) < 0.01 and res.relative_delta <= res.tolerance == 0.01
    assert res.n_steps == res.meta.params["n_steps"] == res.tries[-1][0]


def test_steps_double_until_within_tolerance(tiny_hooked):
    res = attribution.run(tiny_hooked, "The quick brown fox jumps", " the", n_steps=1, max_steps=256, tolerance=1e-4)
    steps = [int(n) for n, _ in res.tries]
    assert steps == step_schedule(1, 256)[:len(steps)] and len(steps) > 1
    assert all(e > 1e-4 for _, e in res.tries[:-1]) and res.tries[-1][1] <= 1e-4
    assert _completeness_error(res) == pytest.approx(res.relative_delta, abs=1e-4)
    assert res.n_steps == steps[-1] and "tried" in res.summary()


def test_not_converging_is_an_error_naming_the_error_reached(tiny_hooked):
    with pytest.raises(IGNotConverged, match=r"did not converge: completeness error [\d.]+% .* at 2 steps .*--max-steps"):
        attribution.run(tiny_hooked, "The quick brown fox jumps", " the", n_steps=1, max_steps=2, tolerance=1e-9)


def test_step_schedule_and_bad_settings(tiny_hooked):
    assert step_schedule(64, 1024) == [64, 128, 256, 512, 1024] and step_schedule(64, 100) == [64]
    with pytest.raises(InterpError, match="--n-steps <= --max-steps"):
        step_schedule(64, 32)
    with pytest.raises(InterpError, match="--tolerance"):
        attribution.run(tiny_hooked, "The quick", " the", tolerance=0)


def test_target_not_in_vocabulary(tiny_hooked):
    with pytest.raises(TokenError, match="not a single token"):
        attribution.run(tiny_hooked, "The quick brown fox", " xylophone quartet")


@pytest.mark.slow
@pytest.mark.parametrize("prompt,target", [("When Mary and John went to the store, John gave a drink to", " Mary"),
                                           ("The capital of France is", " Paris"),
                                           ("Which organ pumps blood? The", " heart")])
def test_smollm2_ig_completeness_within_tolerance_at_defaults(smol_hooked, prompt, target):
    res = attribution.run(smol_hooked, prompt, target)
    print(f"SmolLM2 IG {prompt!r}->{target!r}: f(x)-f(b) {res.f_input - res.f_baseline:.4f}, steps used "
          f"{res.n_steps}, tries " + ", ".join(f"{int(n)}: {100 * e:.3f}%" for n, e in res.tries))
    assert _completeness_error(res) < 0.01
    assert np.isfinite(res.grad_x_input).all()
