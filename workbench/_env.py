"""Process environment the workbench needs, applied before torch or the HF stack is imported."""
from __future__ import annotations

import os

# Offline by default: a hub miss otherwise costs ~23 s of retries before failing. Online users set
# WORKBENCH_ONLINE=1 and the hub-fetching code paths (hub ids in benchmarks/, hf:<repo id>) work.
_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
}
_ALWAYS = {
    # torch's default OpenMP spin-wait makes 2 threads 5-20x slower when another process holds a core.
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_DISABLED": "true",
    "DISABLE_MULTIPROC": "1",
}


def apply() -> None:
    """Set (without overriding the user's values) the variables the stack reads at import time."""
    for key, value in _ALWAYS.items():
        os.environ.setdefault(key, value)
    if os.environ.get("WORKBENCH_ONLINE") != "1":
        for key, value in _OFFLINE.items():
            os.environ.setdefault(key, value)
