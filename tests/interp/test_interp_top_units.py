"""Links to evaluations: top units at the answer position with activation x gradient attribution (checked
against gradients taken through the raw HF model), failure features with a corrected test, and judges."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.stats import adjust_pvalues
from workbench.cli import main
from workbench.interp import artifacts
from workbench.interp import top_units as TU
from workbench.interp.failure_features import _fisher

PROMPT = "Which organ pumps blood? The heart, the lung"


def _hf_grads(model, prompt: str, answer_id: int, layer: int):
    """(neuron activations, their gradient, resid_post, its gradient) at the last position, through HF hooks."""
    seen = {}
    dec = model.hf.get_decoder()

    def keep_in(m, args):
        args[0].retain_grad()
        seen["neurons"] = args[0]

    def keep_out(m, args, out):
        h = out[0] if isinstance(out, tuple) else out
        h.retain_grad()
        seen["resid"] = h

    handles = [dec.layers[layer].mlp.down_proj.register_forward_pre_hook(keep_in),
               dec.layers[layer].register_forward_hook(keep_out)]
    try:
        ids = model.tokenize(prompt)
        logits = model.hf(ids).logits
        logits[0, -1, answer_id].backward()
    finally:
        for h in handles:
            h.remove()
        model.hf.zero_grad(set_to_none=True)
    n, r = seen["neurons"], seen["resid"]
    return n.detach()[0, -1], n.grad[0, -1], r.detach()[0, -1], r.grad[0, -1]


def test_neuron_and_feature_attribution_match_hf_gradients(tiny_hooked, tiny_sae, corpus_roots):
    aid, sae_r = tiny_sae
    r = TU.run(tiny_hooked, PROMPT, layers=[1], saes=[aid], answer=" heart", top=200, artifacts=corpus_roots[1])
    answer_id = tiny_hooked.tokenizer(" heart", add_special_tokens=False)["input_ids"][0]
    assert r.answer_id == answer_id and r.position == tiny_hooked.tokenize(PROMPT).shape[-1] - 1
    a, g, x, gx = _hf_grads(tiny_hooked, PROMPT, answer_id, 1)
    neurons = r.units[r.units["kind"] == "neuron"].set_index("unit")
    assert len(neurons) == 64
    np.testing.assert_allclose(neurons.loc[range(64), "activation"], a.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(neurons.loc[range(64), "attribution"], (a * g).numpy(), rtol=1e-3, atol=1e-7)
    assert neurons.iloc[0]["activation"] == pytest.approx(float(a.max()), rel=1e-5)
    # completeness of the SAE decomposition: sum of latent attributions + error + b_dec . grad = x . grad
    feats = r.units[r.units["kind"] == "feature"]
    b_dec = sae_r.sae().b_dec.detach()
    total = feats["attribution"].sum() + r.sae_error[aid] + float(b_dec @ gx)
    assert total == pytest.approx(float(x @ gx), rel=1e-3, abs=1e-5)
    assert (feats["activation"] > 0).sum() == 8   # k active latents


def test_fisher_tests_and_correction():
    rng = np.random.default_rng(0)
    wrong = np.array([True] * 10 + [False] * 30)
    z = rng.random((40, 5)) * (rng.random((40, 5)) < 0.3)
    z[:, 2] = np.where(wrong, 1.0, 0.0)          # fires exactly on the wrong items
    rows = pd.DataFrame(_fisher(z > 0, z, wrong, min_items=3))
    best = rows.sort_values("p").iloc[0]
    assert best["feature"] == 2 and best["wrong_fired"] == 10 and best["right_fired"] == 0
    from scipy.stats import hypergeom

    assert best["p"] == pytest.approx(hypergeom(40, 10, 10).pmf(10))   # P(all 10 firings land on the 10 wrong)
    adj = adjust_pvalues(rows["p"].to_numpy(), "holm")
    assert (adj >= rows["p"].to_numpy()).all() and adj[rows["feature"] == 2][0] < 0.05


@pytest.fixture
def stored_run(tmp_path):
    from workbench.store import RunStore

    store = RunStore(tmp_path / "runs")
    prompts = ["Which organ pumps blood? The", "The quick brown fox", "What do plants need to make food?",
               "def add(a, b):", "True, False. Answer:", "The heart, the lung"] * 3
    run = store.create("run-1", {"model": {"spec": "hf:tiny"}, "tasks": {"toy": {}}})
    store.publish(run, pd.DataFrame({"task": "toy", "doc_id": range(len(prompts)), "prompt": prompts,
                                     "target_text": " heart", "choices": [[" A", " B"]] * len(prompts),
                                     "prediction": "1", "acc": [0.0, 1.0, 1.0, 0.0, 1.0, 0.0] * 3}), {"tasks": {}})
    return store.root


def test_cli_top_units_on_a_sample_and_failure_features(tiny_model_dir, tiny_sae, corpus_roots, stored_run, capsys):
    aid, _ = tiny_sae
    base = ["--model", f"hf:{tiny_model_dir}", "--artifacts", str(corpus_roots[1])]
    assert main(["interp", "top-units", *base, "--run", "run-1", "--sample", "0", "--store", str(stored_run),
                 "--sae", aid, "--quiet"]) == 0
    r = artifacts.load(capsys.readouterr().out.strip(), corpus_roots[1])
    assert r.answer == " B" and r.meta.source["doc_id"] == "0"     # the chosen (wrong) answer is attributed
    assert set(r.units["kind"]) == {"feature"}
    assert main(["interp", "failures", *base, "--run", "run-1", "--store", str(stored_run), "--sae", aid,
                 "--min-items", "2", "--correction", "bh", "--quiet"]) == 0
    f = artifacts.load(capsys.readouterr().out.strip(), corpus_roots[1])
    assert f.n_wrong == 9 and f.n_right == 9 and len(f.items) == 18
    assert (f.tests["p_adjusted"] >= f.tests["p"] - 1e-12).all()
    # prompts repeat three times with the same label, so a latent firing on one wrong prompt fires on 3 wrong items
    assert (f.tests["wrong_fired"] % 3 == 0).all()


def test_sample_tool_finds_the_models_saes(tiny_hooked, tiny_sae, corpus_roots, stored_run):
    from workbench.interp.sources import from_run
    from workbench.interp.tools import TOOLS, sample_tools

    assert "top_units" in sample_tools()
    sample = from_run("run-1", "3", store=stored_run)
    r = TOOLS.get("top_units").on_sample(tiny_hooked, sample, corpus_roots[1])
    assert tiny_sae[0] in r.meta.params["saes"] and r.meta.source["run_id"] == "run-1"


def test_judge_explanations_with_a_real_tiny_model(tiny_model_dir, tiny_sae, tiny_hooked, corpus_roots):
    """The pipeline end to end with a real (random, hence useless) judge: scores are correlations, the
    control uses another feature's explanation."""
    from workbench.interp import features
    from workbench.interp.explain import Judge, explain_units

    f = features.run(tiny_hooked, sae=tiny_sae[0], top=4, window=3, artifacts=corpus_roots[1],
                     activations=corpus_roots[0])
    units = f.stats[f.stats["n_fired"] > 0].sort_values("max", ascending=False)["unit"].head(2).tolist()
    judge = Judge(f"hf:{tiny_model_dir}")
    ex = explain_units("tiny", f.contexts, units, random_contexts=f.random_contexts, random_acts=f.random_acts,
                       n_sim=2, judge=judge)
    assert ex["unit"].tolist() == units and (ex["n_sim"] == 4).all()
    assert ex["score"].between(-1, 1).all() and ex["control_score"].between(-1, 1).all()
    sims = judge.simulate("feature", "anything", ["a <<b>> c", "d <<e>> f"])
    assert sims.shape == (2,) and ((sims >= 0) & (sims <= 9)).all()
