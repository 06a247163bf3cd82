"""Errors the interpretability tools raise on bad input (each a WorkbenchError: one CLI line, exit 2)."""
from __future__ import annotations

from workbench.errors import WorkbenchError
from workbench.store.artifacts import ArtifactError


class InterpError(WorkbenchError):
    """Bad input to an interpretability tool (hook name, prompt, token, dataset)."""


class UnknownHookError(InterpError):
    """A hook name the model does not have."""


class PromptTooLongError(InterpError):
    """A prompt with more tokens than the model's context."""


class TokenError(InterpError):
    """A target text that is not exactly one token of the vocabulary."""


__all__ = ["ArtifactError", "InterpError", "PromptTooLongError", "TokenError", "UnknownHookError"]
