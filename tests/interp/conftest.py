"""Fixtures for the interpretability tests: the tiny random Llama and (slow) SmolLM2, each behind the hook layer."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_hooked(tiny_model_dir):
    from workbench.interp.hooks import load_hooked

    return load_hooked(f"hf:{tiny_model_dir}")


@pytest.fixture(scope="session")
def smol_hooked():
    from workbench.interp.hooks import load_hooked

    return load_hooked("smollm2-135m")


@pytest.fixture
def artifacts_root(tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(root))
    return root


@pytest.fixture(scope="session")
def gemma_hooked():
    from workbench.interp.hooks import load_hooked

    return load_hooked("gemma3-270m")


# ---- activation corpora, SAEs and unit explanations on the tiny model ----------------------------------
@pytest.fixture(scope="session")
def corpus_roots(tmp_path_factory):
    """(activation root, artifact root) shared by the corpus-tool tests."""
    root = tmp_path_factory.mktemp("corpus-tools")
    return root / "activations", root / "artifacts"


@pytest.fixture(scope="session")
def tiny_corpus(tiny_hooked, real_data_dir, corpus_roots):
    """A corpus of the tiny model over the benchmark mirror: layers 0 and 1, residual stream and MLP neurons."""
    from workbench.interp import collect

    return collect.run(tiny_hooked, layers=[0, 1], sites=["resid_post", "mlp_neurons"], tokens=3000, shard_tokens=700,
                       batch_tokens=512, max_len=64, data_dir=real_data_dir, activations=corpus_roots[0], progress=False)


@pytest.fixture(scope="session")
def tiny_sae(tiny_hooked, tiny_corpus, real_data_dir, corpus_roots):
    """A TopK SAE on the tiny corpus' layer-1 residual stream, saved as an artifact (id, result)."""
    from workbench.interp import artifacts, sae

    r = sae.run(tiny_hooked, layer=1, corpus=tiny_corpus.corpus_id, expansion=4, k=8, epochs=3, batch_tokens=256,
                eval_tokens=400, activations=corpus_roots[0], data_dir=real_data_dir, progress=False)
    return artifacts.save(r, corpus_roots[1]), r


# Clean/corrupted pairs of equal token length for the tiny model's tokenizer; " the" and " a" are single tokens.
TINY_PAIRS = (("The heart pumps blood", "The lung pumps blood"), ("The quick brown fox", "The quick brown dog"),
              ("The fox jumps over", "The dog jumps over"), ("The heart pumps the", "The lung pumps the"))


@pytest.fixture(scope="session")
def tiny_task(tiny_hooked):
    from workbench.interp.circuit_tasks import Example, TaskData

    ids = (tiny_hooked.single_token(" the"), tiny_hooked.single_token(" a"))
    return TaskData("tiny", "logit_diff", [Example(c, k, " the", " a", ids, (1.0, -1.0)) for c, k in TINY_PAIRS])
