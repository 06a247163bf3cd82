"""Model registry: a spec string `<backend>:<target>` (or an embedded alias) selects a backend.

Each backend is one module here that registers itself with `@register_backend("<prefix>")` and
returns an lm-eval `LM` that also carries a `ModelInfo` for the run manifest.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from workbench.errors import ModelError
from workbench.models.base import ModelInfo, WorkbenchLM

_BACKENDS: dict[str, tuple[Callable[..., WorkbenchLM], str]] = {}
_BACKEND_MODULES = ("hf", "gguf", "llamacpp", "openai", "torchint8")


def register_backend(prefix: str, help: str = ""):
    """Register `loader(target, spec, **options) -> WorkbenchLM` for specs `prefix:<target>`."""

    def deco(fn: Callable[..., WorkbenchLM]):
        _BACKENDS[prefix] = (fn, help)
        return fn

    return deco


def _ensure_loaded() -> None:
    for mod in _BACKEND_MODULES:
        importlib.import_module(f"workbench.models.{mod}")


def backends() -> dict[str, str]:
    """Backend prefix -> one-line help."""
    _ensure_loaded()
    return {k: h for k, (_, h) in sorted(_BACKENDS.items())}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (backend, target), expanding embedded aliases; ModelError if unknown."""
    from workbench.models import embedded

    _ensure_loaded()
    if spec in embedded.ALIASES:
        return embedded.ALIASES[spec].backend, spec
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in _BACKENDS or not target:
        raise ModelError(
            f"unknown model spec {spec!r}: use one of {', '.join(p + ':<...>' for p in sorted(_BACKENDS))} "
            f"or an embedded alias ({', '.join(embedded.ALIASES)})"
        )
    return prefix, target


def load_model(spec: str, **options: Any) -> WorkbenchLM:
    """Load a model for evaluation from its spec string."""
    backend, target = parse_spec(spec)
    loader, _ = _BACKENDS[backend]
    return loader(target, spec=spec, **options)


__all__ = ["ModelInfo", "WorkbenchLM", "backends", "load_model", "parse_spec", "register_backend"]
