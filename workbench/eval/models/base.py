"""What every backend returns: an lm-eval LM that also describes itself for the run manifest."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lm_eval.api.model import LM


@dataclass
class ModelInfo:
    """Identity of a loaded model, recorded in every run manifest."""

    spec: str
    backend: str
    path: str = ""
    sha256: str = ""
    dtype: str = ""
    quantization: str = ""
    architecture: str = ""
    parameters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_hf(cls, model: Any, *, spec: str, backend: str, path: str, sha256: str, dtype: str, quantization: str,
                parameters: int | None = None, **extra: Any) -> ModelInfo:
        """Identity of a loaded transformers model (architecture and parameter count read from it)."""
        return cls(spec=spec, backend=backend, path=path, sha256=sha256, dtype=dtype, quantization=quantization,
                   architecture=(model.config.architectures or [type(model).__name__])[0],
                   parameters=parameters if parameters is not None else sum(p.numel() for p in model.parameters()),
                   extra=extra)


def stop_sequences(until: Any) -> list[str]:
    """lm-eval's `until` (a string, a list or nothing) as a list."""
    if not until:
        return []
    return [until] if isinstance(until, str) else [str(s) for s in until]


def cut_at_stops(text: str, until: list[str]) -> str:
    """The text up to the first stop sequence (as lm-eval's HFLM truncates generations)."""
    for s in until:
        if s:
            text = text.split(s)[0]
    return text


class WorkbenchLM(LM):
    """Marker base: an lm-eval `LM` with an `info: ModelInfo` attribute and a `close()`."""

    info: ModelInfo

    def close(self) -> None:
        """Release native resources (llama.cpp contexts, server sessions); idempotent."""
