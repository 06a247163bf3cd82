"""Model text made safe and bounded for display: bidi controls shown, not obeyed; long text clipped."""
from __future__ import annotations

import math
import re
from typing import Any

# Controls that reorder the text around them (U+202A-E embeddings/overrides, U+2066-9 isolates, marks):
# inside a grid cell or a label they can make "exe.txt" read as "txt.exe". Shown as their escapes instead.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutralize_bidi(text: str) -> str:
    """`text` with each bidi control replaced by its visible escape (U+202E -> '\\u202e')."""
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def as_text(value: Any) -> str:
    """Any stored value as display text: '' for None/NaN, bidi controls neutralised."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return neutralize_bidi(str(value))


def one_line(value: Any, n: int = 80) -> str:
    """A grid cell: whitespace collapsed, at most `n` characters."""
    s = " ".join(as_text(value).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def clip(value: Any, n: int = 100) -> str:
    """At most `n` characters of the display text."""
    s = as_text(value)
    return s if len(s) <= n else s[: n - 1] + "…"


def clip_lines(text: str, max_chars: int, max_lines: int) -> tuple[str, bool]:
    """(the first `max_chars` characters and `max_lines` lines of `text`, whether anything was cut)."""
    head = text[:max_chars]
    lines = head.split("\n")
    if len(lines) > max_lines:
        head = "\n".join(lines[:max_lines])
    return head, len(head) < len(text)


__all__ = ["neutralize_bidi", "as_text", "one_line", "clip", "clip_lines"]
