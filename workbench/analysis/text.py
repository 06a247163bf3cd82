"""Text for people, shared by the comparison report and the dashboard: model text made safe and bounded
(bidi controls shown, not obeyed; long text clipped), and labels for runs and metrics."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.store import Run

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


# ---- labels for runs and metrics ------------------------------------------------------------------
ARROWS = {"higher": "↑", "lower": "↓", "zero": "→0"}
DIRECTION_WORDS = {"higher": "higher is better", "lower": "lower is better", "zero": "closer to 0 is better"}


def metric_label(metric: str, d: str) -> str:
    """'acc ↑', 'over_refusal ↓', 'bias_ambig →0'."""
    return f"{metric} {ARROWS.get(d, '')}".strip()


def short_spec(spec: str) -> str:
    """A model spec for a label: a path-like target reduced to its last component."""
    prefix, sep, target = spec.partition(":")
    if sep and ("/" in target or "\\" in target):
        return f"{prefix}:…/{Path(target).name}"
    return spec


def run_label(run: Run) -> str:
    """'model · backend · date' for a run (its id is on hover)."""
    model = run.manifest.get("model") or {}
    created = str(run.manifest.get("created") or "")[:16].replace("T", " ")
    return " · ".join(p for p in (short_spec(str(model.get("spec", "?"))), str(model.get("backend", "?")), created) if p)


def run_labels(runs: Sequence[Run]) -> dict[str, str]:
    """run id -> its label, made unique among `runs` by adding the id where two would read the same."""
    labels = {r.run_id: run_label(r) for r in runs}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {rid: as_text(label if counts[label] == 1 else f"{label} · {rid}") for rid, label in labels.items()}
