"""Causal tracing: restore-everything gives the clean probability, restore-nothing the corrupted one, seeds repeat."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.interp import artifacts
from workbench.interp import trace as T
from workbench.interp.errors import InterpError, TokenError

FACT = T.Fact("The heart pumps blood", "heart", " the")
ATOL = 1e-5


def _setup(model, fact=FACT, samples=3, scale=2.0, seed=0):
    p = T.prepare(model, fact, single=True)
    names = [T.SITES["state"].format(layer=l) for l in range(model.n_layers)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(p.tokens, names)
    clean = {n: v[0] for n, v in cache.items()}
    clean_prob = float(torch.softmax(logits[0, -1], -1)[p.target_id])
    return p, clean, clean_prob, T.make_noise(p, samples, scale, model.d_model, seed)


def _restore_all_and_none(model, fact):
    p, clean, clean_prob, noise = _setup(model, fact)
    T_ = p.tokens.shape[1]
    everything = [(T.SITES["state"].format(layer=l), t) for l in range(model.n_layers) for t in range(T_)]
    last_layer = [(T.SITES["state"].format(layer=model.n_layers - 1), t) for t in range(T_)]
    probs = T.restore_probs(model, p, noise, [[], everything, last_layer], clean, batch_size=4)
    with torch.no_grad():
        plain = torch.softmax(model.logits(p.tokens)[0, -1], -1)[p.target_id]
    assert clean_prob == pytest.approx(float(plain), abs=ATOL)
    np.testing.assert_allclose(probs[1], clean_prob, atol=ATOL)       # restore all = clean
    np.testing.assert_allclose(probs[2], clean_prob, atol=ATOL)       # the last layer's whole stream decides alone
    # restore none = the corrupted run, computed here without the tracing code
    emb = model.hf.get_input_embeddings()(p.tokens[0]).detach()
    for s in range(noise.shape[0]):
        noisy = emb.clone()
        noisy[p.start:p.end] += noise[s]
        with torch.no_grad():
            logits = model.run_with_hooks(p.tokens, [(T.EMBED_HOOK, lambda a, hook, x=noisy: x[None])])
        assert probs[0, s] == pytest.approx(float(torch.softmax(logits[0, -1], -1)[p.target_id]), abs=ATOL)
    assert np.abs(probs[0] - clean_prob).max() > 1e-6                  # the noise did something
    return p


def test_restore_everything_is_clean_nothing_is_corrupted(tiny_hooked):
    _restore_all_and_none(tiny_hooked, FACT)


def test_trace_grids_batched_equal_per_cell_and_seed_repeats(tiny_hooked):
    kw = dict(samples=3, window=2, kinds=("state", "mlp", "attn"))
    a = T.run(tiny_hooked, [FACT], batch_size=128, seed=1, **kw)
    b = T.run(tiny_hooked, [FACT], batch_size=1, seed=1, **kw)     # one forward per (cell, sample)
    c = T.run(tiny_hooked, [FACT], batch_size=128, seed=1, **kw)
    d = T.run(tiny_hooked, [FACT], batch_size=128, seed=2, **kw)
    for k in kw["kinds"]:
        np.testing.assert_allclose(a.grid(k), b.grid(k), atol=ATOL)
        np.testing.assert_array_equal(a.grid(k), c.grid(k))
    assert not np.allclose(a.grid("state"), d.grid("state"))
    f = a.facts.iloc[0]
    # cells before the subject are the corrupted value; restoring the last layer's state at the last token is clean
    assert np.all(a.grid("state")[:, : int(f["subject_start"])] == f["corrupt_prob"])
    assert a.grid("state")[-1, -1] == pytest.approx(f["clean_prob"], abs=ATOL)
    assert a.noise == pytest.approx(3 * a.sigma)
    assert a.average("state").shape == (tiny_hooked.n_layers, len(T.ROLES))


def test_roles_and_windows():
    # tokens: 0 1 [2 3 4] 5 6 7 -> first 2, middle 3, last 4, first subsequent 5, further 6, last 7
    assert T.role_positions(2, 5, 8) == [[2], [3], [4], [5], [6], [7]]
    assert T.role_positions(1, 2, 3) == [[1], [], [1], [], [], [2]]   # one-token subject right before the last token
    assert list(T.window_layers(0, 10, 30)) == list(range(0, 5))
    assert list(T.window_layers(15, 10, 30)) == list(range(10, 20))
    assert list(T.window_layers(29, 10, 30)) == list(range(24, 30))
    grid = np.arange(24, dtype=float).reshape(3, 8)
    roles = T.by_role(grid, 2, 5, corrupt_prob=1.0)
    np.testing.assert_allclose(roles[:, 1], grid[:, 3] - 1.0)
    np.testing.assert_allclose(roles[:, 4], grid[:, 6] - 1.0)


def test_trace_artifact_roundtrip(tiny_hooked, tmp_path):
    r = T.run(tiny_hooked, [FACT], samples=2, window=1, kinds=("state",), noise="0.5")
    aid = artifacts.save(r, tmp_path)
    back = artifacts.load(aid, tmp_path)
    assert isinstance(back, T.TraceResult) and back.noise == 0.5 and back.noise_rule == "fixed"
    np.testing.assert_array_equal(back.state, r.state)
    assert back.mlp is None and list(back.facts["subject"]) == ["heart"]
    assert "fact(s) traced" in back.summary()


def test_fact_set_screening(tiny_hooked, tmp_path):
    facts = [{"prompt": "The heart pumps blood", "subject": "heart", "attribute": "the"},
             {"prompt": "The quick brown fox", "subject": "quick brown", "attribute": "jumps"},
             {"prompt": "The lung pumps blood", "subject": "lung", "attribute": "a"}]
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(facts))
    r = T.run(tiny_hooked, dataset=str(path), min_prob=0.0, limit=2, samples=2, kinds=("state",))
    assert r.tried == 3 and r.qualified == 3 and len(r.facts) == 2 and len(r.screen) == 3
    assert r.state.shape[0] == 2 and r.roles_state.shape == (2, tiny_hooked.n_layers, 6)
    second = T.run(tiny_hooked, dataset=str(path), min_prob=0.0, limit=1, skip=1, samples=2, kinds=("state",))
    assert list(second.facts["prompt"]) == [r.facts["prompt"].iloc[1]]        # shards follow one screening order
    np.testing.assert_array_equal(second.state[0, :, :int(second.facts["n_tokens"].iloc[0])],
                                  r.state[1, :, :int(second.facts["n_tokens"].iloc[0])])
    with pytest.raises(InterpError, match="none of the 3 facts"):
        T.run(tiny_hooked, dataset=str(path), min_prob=1.1, samples=2, kinds=("state",))


@pytest.mark.parametrize("fact,error,match", [
    (T.Fact("The heart pumps blood", "kidney", " the"), InterpError, "does not occur in the prompt"),
    (T.Fact("The heart pumps blood", "heart", " xylophone quartet"), TokenError, "not a single token"),
])
def test_bad_facts(tiny_hooked, fact, error, match):
    with pytest.raises(error, match=match):
        T.run(tiny_hooked, [fact], samples=1)


def test_noise_argument():
    assert T._noise_scale("3sigma", 0.5) == (1.5, "3sigma")
    assert T._noise_scale("0.1", 0.5) == (0.1, "fixed")
    with pytest.raises(InterpError, match="--noise"):
        T._noise_scale("loud", 0.5)


@pytest.mark.slow
def test_restore_properties_on_smollm2(smol_hooked):
    p = _restore_all_and_none(smol_hooked, T.Fact("The Eiffel Tower is located in the city of", "Eiffel Tower", " Paris"))
    assert p.end - p.start >= 2
    a = T.run(smol_hooked, [T.Fact("The Eiffel Tower is located in the city of", "Eiffel Tower", " Paris")],
                samples=2, kinds=("state",), seed=3)
    b = T.run(smol_hooked, [T.Fact("The Eiffel Tower is located in the city of", "Eiffel Tower", " Paris")],
                samples=2, kinds=("state",), seed=3)
    np.testing.assert_array_equal(a.state, b.state)
    assert a.facts["clean_prob"].iloc[0] > a.facts["corrupt_prob"].iloc[0]


@pytest.mark.slow
def test_known_facts_screen_on_smollm2(smol_hooked, real_data_dir):
    r = T.run(smol_hooked, dataset="known_facts", limit=1, samples=2, kinds=("state",), data_dir=real_data_dir)
    assert r.qualified >= 1 and r.tried >= 1 and len(r.facts) == 1
    s = r.screen[r.screen["qualified"]]
    assert (s["rank"] == 0).all()
