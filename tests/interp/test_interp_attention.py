"""Head scores against constructed patterns; multi-setting scores and the stable induction rule."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.interp import attention
from workbench.interp.attention import (
    classify_induction,
    repeated_random_tokens,
    score_heads,
    setting_seeds,
    summarize_scores,
)
from workbench.interp.errors import InterpError


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


def test_stable_heads_need_every_setting_above_threshold():
    # head 0 always above, head 1 straddles the threshold (mean above it), head 2 always below
    rows = [{"seq_len": n, "seed": s, "layer": 3, "head": h, "previous_token": 0.0, "duplicate_token": 0.0,
             "induction": v} for n, s, vals in [(20, 1, (0.8, 0.45, 0.1)), (40, 1, (0.7, 0.7, 0.2)),
                                                (40, 2, (0.9, 0.65, 0.3))] for h, v in enumerate(vals)]
    scores = summarize_scores(pd.DataFrame(rows))
    assert scores["induction"].tolist() == pytest.approx([0.8, 0.6, 0.2])
    assert scores["induction_min"].tolist() == [0.7, 0.45, 0.1] and scores["induction_max"].tolist() == [0.9, 0.7, 0.3]
    assert scores.loc[0, "induction_std"] == pytest.approx(np.std([0.8, 0.7, 0.9]))
    stable, unstable = classify_induction(scores, 0.5)
    assert stable == [[3, 0, pytest.approx(0.8)]]
    assert unstable == [[3, 1, pytest.approx(0.6), 0.45, 0.7]]


def test_setting_seeds_are_deterministic_and_differ_by_base():
    assert setting_seeds(0, 3) == setting_seeds(0, 3)
    assert len(set(setting_seeds(0, 3)) | set(setting_seeds(1, 3))) == 6


def test_repeated_tokens_and_analyze(tiny_hooked):
    toks, prefix = repeated_random_tokens(tiny_hooked, 6, 3, seed=1)
    assert toks.shape == (3, prefix + 12)
    assert (toks[:, prefix:prefix + 6] == toks[:, prefix + 6:]).all()
    assert not set(toks[:, prefix:].flatten().tolist()) & set(tiny_hooked.tokenizer.all_special_ids)
    res = attention.run(tiny_hooked, "The quick brown fox", seq_lens=[6, 8], n_seqs=2, n_seeds=2, layers=[1])
    T = tiny_hooked.tokenize("The quick brown fox").shape[-1]
    assert res.patterns.shape == (1, tiny_hooked.n_heads, T, T) and res.layers == [1]
    np.testing.assert_allclose(res.patterns.sum(-1), 1.0, atol=1e-5)
    n_heads = tiny_hooked.n_layers * tiny_hooked.n_heads
    assert len(res.head_scores) == n_heads and len(res.by_setting) == 4 * n_heads
    assert set(zip(res.by_setting["seq_len"], res.by_setting["seed"])) == {(n, s) for n in (6, 8)
                                                                          for s in setting_seeds(0, 2)}
    means = res.by_setting.groupby(["layer", "head"])["induction"].mean().to_numpy()
    np.testing.assert_allclose(res.head_scores["induction"], means)
    assert (res.head_scores["induction_min"] <= res.head_scores["induction"]).all()
    assert res.meta.params["seq_lens"] == [6, 8] and "at every setting" in res.meta.params["induction_rule"]


def test_bad_settings(tiny_hooked):
    with pytest.raises(InterpError, match="sequence lengths >= 2"):
        attention.run(tiny_hooked, "The quick", seq_lens=[1])
    with pytest.raises(InterpError, match="takes at most"):
        attention.run(tiny_hooked, "The quick", seq_lens=[tiny_hooked.n_ctx])


@pytest.mark.slow
def test_smollm2_named_induction_heads_do_not_depend_on_the_seed(smol_hooked):
    named = []
    for seed in (0, 1):
        res = attention.run(smol_hooked, "The cat sat", layers=[0], seed=seed)
        print(f"SmolLM2 seed {seed}:", res.summary().replace("\n", " | "))
        named.append({(l, h) for l, h, _ in res.induction_heads})
    assert named[0] and named[0] == named[1]
