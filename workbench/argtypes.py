"""Command-line argument types (argparse `type=`): a bad value is one clear line naming the flag."""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable


def csv(value: str) -> list[str]:
    """Comma-separated names."""
    return [v.strip() for v in value.split(",") if v.strip()]


def ints(value: str) -> list[int]:
    """Comma-separated integers."""
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def ints_at_least(low: int) -> Callable[[str], list[int]]:
    """argparse type: comma-separated integers, each >= low, at least one."""

    def parse(value: str) -> list[int]:
        values = ints(value)
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}")
        if min(values) < low:
            raise argparse.ArgumentTypeError(f"each must be at least {low}, got {min(values)}")
        return values

    parse.__name__ = f"integers >= {low}"
    return parse


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer >= low (and <= high, if given)."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {n}")
        if high is not None and n > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {n}")
        return n

    parse.__name__ = f"integer >= {low}"
    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer >= low."""
    return int_in(low)


DEVICE_PATTERN = r"cpu|cuda(:\d+)?|mps|auto"  # the torch devices a model can be placed on ("auto": cuda if any)


def torch_device(value: str) -> str:
    """argparse type: a torch device name the workbench places models on."""
    if not re.fullmatch(DEVICE_PATTERN, value.strip()):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or auto, got {value!r}")
    return value.strip()


SEED_MAX = 2**32 - 1
rng_seed = int_in(0, SEED_MAX)  # the range every random generator the workbench seeds accepts


def float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float in [low, high] (ends open when asked)."""

    def parse(value: str) -> float:
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        bad_low = x <= low if low_open else x < low
        bad_high = x >= high if high_open else x > high
        if not math.isfinite(x) or bad_low or bad_high:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {lo}{low}, {high}{hi}, got {value}")
        return x

    parse.__name__ = "number"
    return parse


def path(value: str) -> str:
    """argparse type: a non-empty path (an empty one, say from an unset variable, would silently mean the default)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return value
