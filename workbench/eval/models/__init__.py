"""Model registry: a spec string `<backend>:<target>` (or an embedded alias) selects a backend.

Each backend is one module here that registers itself with `@register_backend("<prefix>")` and
returns an lm-eval `LM` that also carries a `ModelInfo` for the run manifest; the registry finds it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.errors import ModelError
from workbench.eval.models.base import ModelInfo, WorkbenchLM
from workbench.registry import Registry

Loader = Callable[..., WorkbenchLM]
BACKENDS: Registry[Loader] = Registry("model backend", package=__name__, error=ModelError)


def register_backend(prefix: str, help: str = "") -> Callable[[Loader], Loader]:
    """Register `loader(target, spec, **options) -> WorkbenchLM` for specs `prefix:<target>`."""
    return BACKENDS.register(prefix, help=help)


def backends() -> dict[str, str]:
    """Backend prefix -> one-line help."""
    return {e.name: e.help for e in BACKENDS.entries()}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (backend, target), expanding embedded aliases; ModelError if unknown."""
    from workbench.eval.models import embedded

    if spec in embedded.ALIASES:
        return embedded.ALIASES[spec].backend, spec
    prefix, sep, target = spec.partition(":")
    if not sep or prefix not in BACKENDS or not target:
        raise ModelError(
            f"unknown model spec {spec!r}: use one of {', '.join(p + ':<...>' for p in BACKENDS.names())} "
            f"or an embedded alias ({', '.join(embedded.ALIASES)})"
        )
    return prefix, target


def load_model(spec: str, **options: Any) -> WorkbenchLM:
    """Load a model for evaluation from its spec string."""
    backend, target = parse_spec(spec)
    return BACKENDS.get(backend)(target, spec=spec, **options)


__all__ = ["BACKENDS", "ModelInfo", "WorkbenchLM", "backends", "load_model", "parse_spec", "register_backend"]
