"""What the commands share: parent parsers for the common flags and output helpers."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from workbench import settings
from workbench.argtypes import path


def _parent(add: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add(p)
    return p


STORE = _parent(lambda p: p.add_argument("--store", type=path, help=settings.STORE_HELP))
ARTIFACTS = _parent(lambda p: p.add_argument("--artifacts", type=path, help=settings.ARTIFACTS_HELP))
DATA = _parent(lambda p: p.add_argument("--data-dir", type=path, help=settings.DATA_HELP))
JSON = _parent(lambda p: p.add_argument("--json", action="store_true", help="machine-readable output (JSON)"))


def json_safe(obj: Any) -> Any:
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def verify_entries(ids: list[str], scan: Callable[[], tuple[list[str], list[tuple[Any, str]]]],
                   verify: Callable[[str], list[str]], what: str) -> int:
    """Print one FAIL line per problem and a count; exit status 1 if any. `ids` empty: every entry `scan` finds."""
    from workbench.errors import WorkbenchError

    problems: list[str] = []
    if not ids:
        ids, bad = scan()
        problems += [f"{path}: {why}" for path, why in bad]
    else:
        bad = []
    for entry in ids:
        try:
            problems += verify(entry)
        except WorkbenchError as exc:
            problems.append(str(exc))
    for line in problems:
        print(f"FAIL {line}")
    print(f"{len(ids) + len(bad)} {what}(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0
