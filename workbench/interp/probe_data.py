"""Labelled probe datasets, declared in `probes/<name>.yaml` and built from the benchmark mirror.

A declaration names a `builder` (registry below) and its parameters; builders read files relative to
the mirror (`--data-dir`, else $WORKBENCH_DATA_DIR, else ../shared/benchmark-data) and return texts
with binary labels and a group id (items in one group stay on one side of the train/test split).
"""
from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import settings
from workbench.errors import DataError
from workbench.interp.errors import InterpError
from workbench.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class ProbeDataset:
    name: str
    texts: list[str]
    labels: np.ndarray          # [n] 0/1
    groups: np.ndarray          # [n] group id for splitting
    spec: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[dict[str, Any], Path], tuple[list[str], list[int], list[int]]]
BUILDERS: Registry[Builder] = Registry("probe dataset builder", error=InterpError)


def register_builder(name: str) -> Callable[[Builder], Builder]:
    return BUILDERS.register(name)


def probes_dir() -> Path:
    """Probe declarations: WORKBENCH_PROBES, else the repo's probes/."""
    return settings.probes_dir()


def declarations() -> dict[str, Path]:
    """Probe dataset name -> its declaration file."""
    return {p.stem: p for p in sorted(probes_dir().glob("*.yaml"))}


def read_declaration(path: Path) -> dict[str, Any]:
    """One probes/<name>.yaml; DataError naming the file if it is unreadable or not a YAML mapping."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"probe declaration {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict):
        raise DataError(f"probe declaration {path} is not a YAML mapping")
    return spec


def available() -> dict[str, dict[str, Any]]:
    """Every readable probe declaration by name (an unreadable one is skipped with a warning)."""
    out = {}
    for name, path in declarations().items():
        try:
            out[name] = read_declaration(path)
        except DataError as exc:
            log.warning("skipping %s", exc)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"probe data file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh, strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"probe data file {path} cannot be read: {exc}") from None


def _sample(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = np.arange(n)
    if limit is not None and limit < n:
        idx = np.sort(rng.choice(n, size=limit, replace=False))
    return idx


@register_builder("truthfulqa_statements")
def _truthfulqa(spec: dict[str, Any], data: Path) -> tuple[list[str], list[int], list[int]]:
    rows = [r for r in _rows(data / spec["file"]) if r.get("Best Answer") and r.get("Incorrect Answers")]
    rng = np.random.default_rng(spec.get("seed", 0))
    template = spec.get("template", "Q: {question}\nA: {answer}")
    texts, labels, groups = [], [], []
    for g, i in enumerate(_sample(len(rows), spec.get("limit"), rng)):
        r = rows[i]
        wrong = r["Incorrect Answers"].split(";")[0].strip()
        for answer, label in ((r["Best Answer"].strip(), 1), (wrong, 0)):
            texts.append(template.format(question=r["Question"].strip(), answer=answer))
            labels.append(label)
            groups.append(g)
    return texts, labels, groups


@register_builder("two_files")
def _two_files(spec: dict[str, Any], data: Path) -> tuple[list[str], list[int], list[int]]:
    rng = np.random.default_rng(spec.get("seed", 0))
    texts, labels = [], []
    for key, label in (("positive", 1), ("negative", 0)):
        side = spec[key]
        rows = _rows(data / side["file"])
        rows = [r for r in rows if all(r.get(k) == v for k, v in (side.get("where") or {}).items())]
        if not rows or side["column"] not in rows[0]:
            raise DataError(f"probe {spec.get('name')}: no column {side['column']!r} rows in {side['file']}")
        for i in _sample(len(rows), spec.get("limit"), rng):
            texts.append(rows[i][side["column"]].strip())
            labels.append(label)
    return texts, labels, list(range(len(texts)))


_NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas"]
_THINGS = ["movie", "meal", "book", "concert", "hotel", "game", "lecture", "trip", "song", "play"]
_POSITIVE = ["wonderful", "excellent", "delightful", "great", "fantastic", "lovely", "superb", "pleasant"]
_NEGATIVE = ["terrible", "awful", "dreadful", "boring", "horrible", "disappointing", "poor", "unpleasant"]


@register_builder("synthetic_sentiment")
def _synthetic(spec: dict[str, Any], data: Path) -> tuple[list[str], list[int], list[int]]:
    """Templated sentences; with `negation`, half say "was not <adj>", which flips the label (an XOR no
    single word decides, so a linear read-out of token identities alone cannot solve it)."""
    rng = np.random.default_rng(spec.get("seed", 0))
    negation = bool(spec.get("negation", False))
    texts, labels = [], []
    for i in range(int(spec.get("n", 200))):
        positive = bool(i % 2)
        negated = negation and bool((i // 2) % 2)
        adj = rng.choice(_POSITIVE if positive else _NEGATIVE)
        texts.append(f"{rng.choice(_NAMES)} thought the {rng.choice(_THINGS)} was {'not ' if negated else ''}{adj}.")
        labels.append(int(positive != negated))
    return texts, labels, list(range(len(texts)))


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ProbeDataset:
    """Build the dataset declared in probes/<name>.yaml."""
    decls = declarations()
    if name not in decls:
        raise InterpError(f"unknown probe dataset {name!r}: declared in {probes_dir()}: {', '.join(decls) or 'none'}")
    spec = read_declaration(decls[name])
    try:
        builder = BUILDERS.get(str(spec.get("builder")))
    except InterpError as exc:
        raise InterpError(f"probe {name}: {exc}") from None
    try:
        texts, labels, groups = builder(spec, settings.data_dir(data_dir))
    except KeyError as exc:
        raise DataError(f"probe {name}: {decls[name]} lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"probe {name}: {decls[name]} has a value of the wrong kind ({exc})") from None
    if len(set(labels)) != 2:
        raise DataError(f"probe {name} needs both labels; got {sorted(set(labels))}")
    return ProbeDataset(name, texts, np.asarray(labels, dtype=np.int64), np.asarray(groups, dtype=np.int64), spec)
