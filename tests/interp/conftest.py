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


# Clean/corrupted pairs of equal token length for the tiny model's tokenizer; " the" and " a" are single tokens.
TINY_PAIRS = (("The heart pumps blood", "The lung pumps blood"), ("The quick brown fox", "The quick brown dog"),
              ("The fox jumps over", "The dog jumps over"), ("The heart pumps the", "The lung pumps the"))


@pytest.fixture(scope="session")
def tiny_task(tiny_hooked):
    from workbench.interp.circuit_tasks import Example, TaskData

    ids = (tiny_hooked.single_token(" the"), tiny_hooked.single_token(" a"))
    return TaskData("tiny", "logit_diff", [Example(c, k, " the", " a", ids, (1.0, -1.0)) for c, k in TINY_PAIRS])
