"""LM evaluation & interpretability workbench."""
from __future__ import annotations

from workbench import settings

settings.apply_environment()

__version__ = "0.1.0"


def load_run(run_id: str, store: str | None = None):
    """Per-sample results of a completed run as a pandas DataFrame (see workbench.store)."""
    from workbench.store import RunStore

    return RunStore(store).load(run_id).samples


__all__ = ["load_run", "__version__"]
