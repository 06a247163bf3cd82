"""Head scores against constructed patterns; patterns from the hook layer."""
from __future__ import annotations

import numpy as np

from workbench.interp.attention import analyze, repeated_random_tokens, score_heads


def _pattern(n_pos: int, key_of) -> np.ndarray:
    p = np.zeros((n_pos, n_pos))
    for q in range(n_pos):
        p[q, key_of(q)] = 1.0
    return p


def test_scores_of_ideal_heads():
    n, prefix = 5, 1
    T = prefix + 2 * n
    prev = _pattern(T, lambda q: max(q - 1, 0))
    ind = _pattern(T, lambda q: q - n + 1 if q >= prefix + n else 0)
    dup = _pattern(T, lambda q: q - n if q >= prefix + n else 0)
    pats = np.stack([prev, ind, dup])[None, None]   # [layer=1, batch=1, head=3, q, k]
    df = score_heads(pats, [0], n, prefix)
    assert df.loc[0, "previous_token"] == 1.0 and df.loc[1, "induction"] == 1.0 and df.loc[2, "duplicate_token"] == 1.0
    assert df.loc[0, "induction"] == 0.0 and df.loc[1, "duplicate_token"] == 0.0 and df.loc[2, "induction"] == 0.0


def test_repeated_tokens_and_analyze(tiny_hooked):
    toks, prefix = repeated_random_tokens(tiny_hooked, 6, 3, seed=1)
    assert toks.shape == (3, prefix + 12)
    assert (toks[:, prefix:prefix + 6] == toks[:, prefix + 6:]).all()
    assert not set(toks[:, prefix:].flatten().tolist()) & set(tiny_hooked.tokenizer.all_special_ids)
    res = analyze(tiny_hooked, "The quick brown fox", seq_len=6, n_seqs=2, layers=[1])
    T = tiny_hooked.tokenize("The quick brown fox").shape[-1]
    assert res.patterns.shape == (1, tiny_hooked.n_heads, T, T) and res.layers == [1]
    np.testing.assert_allclose(res.patterns.sum(-1), 1.0, atol=1e-5)
    assert len(res.head_scores) == tiny_hooked.n_layers * tiny_hooked.n_heads
