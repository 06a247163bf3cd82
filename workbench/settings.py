"""Every `WORKBENCH_*` variable is read here, and only here.

Two kinds of setting: where things live (a flag, else an environment variable, else a default), and
the scoring settings that can change a score (refusal judge, judge model, sandbox limits). The latter
default from the environment but are `workbench eval` options, recorded in every run manifest and
checked by `compare`/`gate` before two runs are paired.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# ---- process environment -------------------------------------------------------------------------
# Offline by default: a hub miss otherwise costs ~23 s of retries before failing. Online users set
# WORKBENCH_ONLINE=1 and the hub-fetching code paths (hub ids in benchmarks/, hf:<repo id>) work.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
_ALWAYS = {
    # torch's default OpenMP spin-wait makes 2 threads 5-20x slower when another process holds a core.
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_DISABLED": "true",
    "DISABLE_MULTIPROC": "1",
    "DASH_DISABLE_VERSION_CHECK": "true",
}


def online() -> bool:
    """Hub downloads allowed (WORKBENCH_ONLINE=1)."""
    return os.environ.get("WORKBENCH_ONLINE") == "1"


def apply_environment() -> None:
    """Set (without overriding the user's values) the variables the stack reads at import time."""
    for key, value in _ALWAYS.items():
        os.environ.setdefault(key, value)
    if not online():
        for key, value in _OFFLINE.items():
            os.environ.setdefault(key, value)


# ---- where things live ---------------------------------------------------------------------------
def _path(override: str | os.PathLike | None, var: str, default: str | Path) -> Path:
    return Path(override or os.environ.get(var) or default).expanduser().resolve()


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The benchmark mirror: --data-dir, else WORKBENCH_DATA_DIR, else ../shared/benchmark-data."""
    return _path(override, "WORKBENCH_DATA_DIR", REPO_ROOT.parent / "shared" / "benchmark-data")


def store_dir(override: str | os.PathLike | None = None) -> Path:
    """The run store: --store, else WORKBENCH_STORE, else ./workbench-runs."""
    return _path(override, "WORKBENCH_STORE", "workbench-runs")


def artifacts_dir(override: str | os.PathLike | None = None) -> Path:
    """The artifact root: --artifacts, else WORKBENCH_ARTIFACTS, else ./workbench-artifacts."""
    return _path(override, "WORKBENCH_ARTIFACTS", "workbench-artifacts")


def activations_dir(override: str | os.PathLike | None = None) -> Path:
    """Stored activation corpora: --activations, else WORKBENCH_ACTIVATIONS, else ./workbench-activations."""
    return _path(override, "WORKBENCH_ACTIVATIONS", "workbench-activations")


def cache_dir() -> Path:
    """Converted model checkpoints and other derived files (WORKBENCH_CACHE, else ~/.cache/workbench)."""
    path = _path(None, "WORKBENCH_CACHE", Path.home() / ".cache" / "workbench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def benchmarks_dir() -> Path:
    """Declarative benchmark and task configs (WORKBENCH_BENCHMARKS, else the repo's benchmarks/)."""
    return _path(None, "WORKBENCH_BENCHMARKS", REPO_ROOT / "benchmarks")


def probes_dir() -> Path:
    """Probe dataset declarations (WORKBENCH_PROBES, else the repo's probes/)."""
    return _path(None, "WORKBENCH_PROBES", REPO_ROOT / "probes")


# Help strings for the flags above, so every command says the same thing.
# Contexts per scoring forward and sequences generated at once on the torch backends. 16: a decode step
# of 16 short sequences costs about what 8 do on a CPU (SmolLM2: 164 vs 95 tokens/s).
BATCH_SIZE = 16
STORE_HELP = "run store directory (default: $WORKBENCH_STORE, else ./workbench-runs)"
ARTIFACTS_HELP = "artifact root (default: $WORKBENCH_ARTIFACTS, else ./workbench-artifacts)"
ACTIVATIONS_HELP = "activation corpora (default: $WORKBENCH_ACTIVATIONS, else ./workbench-activations)"
DATA_HELP = "benchmark mirror (default: $WORKBENCH_DATA_DIR, else ../shared/benchmark-data)"


# ---- performance (never changes a score) ----------------------------------------------------------
def threads() -> int | None:
    """Torch / llama.cpp threads (WORKBENCH_THREADS; default: the library's choice)."""
    value = os.environ.get("WORKBENCH_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def device(value: str | None = None) -> str:
    """Torch device for the hf/gguf backends: `value` (eval's --device), else WORKBENCH_DEVICE: cpu (default),
    cuda, cuda:N, mps, or auto = cuda when available. Recorded in the run manifest (model.extra.device): CPU
    and GPU numbers differ slightly."""
    value = (value or os.environ.get("WORKBENCH_DEVICE") or "cpu").strip()
    if value == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def worker_environment(threads: int | None = None, gpu: bool = False) -> dict[str, str]:
    """The environment a Ray worker process needs to behave like this one: every WORKBENCH_* variable, the
    offline and threading flags, PYTHONPATH; with `threads`, its torch/OpenMP thread count; with `gpu`, the
    GPU Ray gave it as the device (unless WORKBENCH_DEVICE says otherwise)."""
    keys = [k for k in os.environ if k.startswith("WORKBENCH_")] + [*_ALWAYS, *_OFFLINE, "PYTHONPATH"]
    env = {k: os.environ[k] for k in keys if k in os.environ}
    if threads:
        env["WORKBENCH_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    if gpu:
        env.setdefault("WORKBENCH_DEVICE", "cuda")
    return env


def ray_object_store_bytes() -> int:
    """Object store of a local Ray instance (WORKBENCH_RAY_OBJECT_STORE_MB, default 256 MB): results are small."""
    value = os.environ.get("WORKBENCH_RAY_OBJECT_STORE_MB", "256")
    return (int(value) if value.isdigit() and int(value) >= 80 else 256) * 2**20


def sandbox_workers() -> int:
    """Programs run at once by the code sandbox (WORKBENCH_SANDBOX_WORKERS, default 2)."""
    value = os.environ.get("WORKBENCH_SANDBOX_WORKERS", "2")
    return max(1, int(value)) if value.isdigit() else 2


# ---- scoring settings (can change a score) ---------------------------------------------------------
@dataclass(frozen=True)
class Scoring:
    """The settings, beyond model and prompts, that decide a sample's score; stored in the manifest."""

    refusal_judge: str = "keyword"
    judge_model: str | None = None        # only for refusal_judge == "model" (default smollm2-135m)
    sandbox_timeout_s: float = 10.0
    sandbox_memory_mb: int = 1024

    @classmethod
    def from_env(cls, **overrides: Any) -> Scoring:
        """Defaults from WORKBENCH_REFUSAL_JUDGE / _JUDGE_MODEL / _SANDBOX_TIMEOUT / _SANDBOX_MEMORY_MB,
        then `overrides` (the eval options; None means not given)."""
        env = {"refusal_judge": os.environ.get("WORKBENCH_REFUSAL_JUDGE"),
               "judge_model": os.environ.get("WORKBENCH_JUDGE_MODEL"),
               "sandbox_timeout_s": os.environ.get("WORKBENCH_SANDBOX_TIMEOUT"),
               "sandbox_memory_mb": os.environ.get("WORKBENCH_SANDBOX_MEMORY_MB")}
        values = {k: v for k, v in env.items() if v}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scoring:
        """Validated settings (ValueError naming the bad one); unknown keys are refused."""
        if not isinstance(values, dict):
            raise ValueError(f"scoring settings must be a mapping, got {type(values).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = {str(k) for k in values} - names
        if unknown:
            raise ValueError(f"unknown scoring setting(s): {', '.join(sorted(unknown))}")
        out = dict(values)
        try:
            if "sandbox_timeout_s" in out:
                out["sandbox_timeout_s"] = float(out["sandbox_timeout_s"])
            if "sandbox_memory_mb" in out:
                out["sandbox_memory_mb"] = int(out["sandbox_memory_mb"])
        except (TypeError, ValueError):
            raise ValueError("sandbox timeout must be a number of seconds and memory an integer of MB") from None
        s = cls(**out)
        if not (0 < s.sandbox_timeout_s <= 3600):
            raise ValueError(f"sandbox timeout must be in (0, 3600] seconds, got {s.sandbox_timeout_s}")
        if not (64 <= s.sandbox_memory_mb <= 1 << 20):
            raise ValueError(f"sandbox memory must be at least 64 MB, got {s.sandbox_memory_mb}")
        if s.refusal_judge == "model" and not s.judge_model:
            s = cls(**{**asdict(s), "judge_model": "smollm2-135m"})
        if s.refusal_judge != "model" and s.judge_model:
            s = cls(**{**asdict(s), "judge_model": None})  # a judge model only matters to the model judge
        return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Runs written before scoring settings were recorded used these (the then-defaults).
LEGACY_SCORING = Scoring()

_active: Scoring | None = None


def scoring() -> Scoring:
    """The scoring settings in force: those of the run being evaluated, else the environment's."""
    return _active if _active is not None else Scoring.from_env()


class using_scoring:
    """Context manager: score with `s` (the harness wraps a run's evaluation in it)."""

    def __init__(self, s: Scoring) -> None:
        self.s, self.prev = s, None

    def __enter__(self) -> Scoring:
        global _active
        self.prev, _active = _active, self.s
        return self.s

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = self.prev
