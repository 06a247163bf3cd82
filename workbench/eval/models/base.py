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


class WorkbenchLM(LM):
    """Marker base: an lm-eval `LM` with an `info: ModelInfo` attribute and a `close()`."""

    info: ModelInfo

    def close(self) -> None:
        """Release native resources (llama.cpp contexts, server sessions); idempotent."""
