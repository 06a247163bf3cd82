"""Helpers for reading Dash component trees in tests."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(node: Any) -> Iterator[Any]:
    """Every component below `node`, itself first (depth first)."""
    yield node
    children = getattr(node, "children", None)
    for c in children if isinstance(children, (list, tuple)) else [children]:
        if c is not None and not isinstance(c, (str, int, float)):
            yield from walk(c)
