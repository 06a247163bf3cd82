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
