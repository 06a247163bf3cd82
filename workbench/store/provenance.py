"""What a manifest records about the environment a result was produced in."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from workbench import settings

# Import names whose distribution is called otherwise.
_DISTRIBUTIONS = {"transformer_lens": "transformer-lens", "sklearn": "scikit-learn", "lm_eval": "lm-eval",
                  "llama_cpp": "llama-cpp-python"}


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of `names` (import or distribution names), plus python and workbench."""
    out = {"python": platform.python_version()}
    for name in names:
        for dist in (_DISTRIBUTIONS.get(name, name), name.replace("_", "-"), name):
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    import workbench

    out["workbench"] = workbench.__version__
    return out


def git_commit() -> str:
    """The checkout's commit ('' outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.REPO_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def hardware() -> dict[str, Any]:
    """CPU, threads and accelerator of this process."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
