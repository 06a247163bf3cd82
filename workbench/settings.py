"""Where things live: data mirror, run store, caches. Each has a flag, an env var and a default."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The benchmark mirror: --data-dir, else WORKBENCH_DATA_DIR, else ../shared/benchmark-data."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get("WORKBENCH_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "benchmark-data").resolve()


def store_dir(override: str | os.PathLike | None = None) -> Path:
    """The run store: --store, else WORKBENCH_STORE, else ./workbench-runs."""
    return Path(override or os.environ.get("WORKBENCH_STORE") or "workbench-runs").expanduser().resolve()


def cache_dir() -> Path:
    """Converted model checkpoints and other derived files (WORKBENCH_CACHE, else ~/.cache/workbench)."""
    base = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    path = Path(base).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def benchmarks_dir() -> Path:
    """Declarative benchmark and task configs (WORKBENCH_BENCHMARKS, else the repo's benchmarks/)."""
    return Path(os.environ.get("WORKBENCH_BENCHMARKS") or REPO_ROOT / "benchmarks").resolve()
