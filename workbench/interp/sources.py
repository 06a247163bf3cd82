"""Prompts taken from stored eval samples, so a failing benchmark item can be opened up directly."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from workbench.interp.errors import InterpError


@dataclass(frozen=True)
class SampleSource:
    """An eval sample's prompt and gold continuation, and the link recorded in the artifact manifest."""

    run_id: str
    task: str
    doc_id: str
    prompt: str
    target_text: str
    store: str
    correct: bool | None = None
    predicted_text: str | None = None    # the choice the model picked (multiple-choice tasks)

    def link(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("prompt")
        return d


def from_run(run_id: str, doc_id: str, task: str | None = None, store: str | os.PathLike | None = None) -> SampleSource:
    """The sample `doc_id` (of `task`, needed when several tasks share the id) of a stored run."""
    from workbench.store import RunStore

    rs = RunStore(store)
    df = rs.load(run_id).samples
    rows = df[df["doc_id"].astype(str) == str(doc_id)]
    if task is not None:
        rows = rows[rows["task"] == task]
    if rows.empty:
        where = f" in task {task}" if task else ""
        raise InterpError(f"run {run_id} has no sample with doc_id {doc_id!r}{where} "
                          f"(tasks: {', '.join(sorted(df['task'].unique())[:8])})")
    if len(rows) > 1:
        raise InterpError(f"doc_id {doc_id!r} occurs in several tasks of run {run_id} "
                          f"({', '.join(sorted(rows['task']))}); pick one with --task")
    return _source(rows.iloc[0], run_id, str(rs.root))


def _source(row: Any, run_id: str, store: str) -> SampleSource:
    correct = bool(row["acc"]) if "acc" in row and row["acc"] == row["acc"] else None
    predicted = None
    choices, pred = row.get("choices"), row.get("prediction")
    if choices is not None and pred is not None and str(pred).isdigit() and int(pred) < len(choices):
        predicted = str(choices[int(pred)])
    target = row.get("target_text")
    return SampleSource(run_id=run_id, task=str(row["task"]), doc_id=str(row["doc_id"]), prompt=str(row["prompt"]),
                        target_text="" if target is None or target != target else str(target), store=store,
                        correct=correct, predicted_text=predicted)


SELECTORS = ("wrong", "correct", "all")


def _correctness(df: Any, manifest: dict[str, Any]) -> Any:
    """Per row, its task's primary metric if that says right (1) or wrong (0) per item (acc, exact_match,
    pass@1, ...); NaN for tasks judged on a rate (refusal) or a bias score."""
    import numpy as np
    import pandas as pd

    from workbench.store.samples import is_correctness, metric_columns, primary_metric

    out = pd.Series(np.nan, index=df.index)
    for task, part in df.groupby("task", sort=False):
        declared = ((manifest.get("tasks") or {}).get(str(task)) or {}).get("primary_metric")
        m = primary_metric([c for c in metric_columns(part) if part[c].notna().any()], declared)
        if m is not None and is_correctness(m):
            out.loc[part.index] = part[m].astype(float)
    return out


def select(run_id: str, selector: str, task: str | None = None, store: str | os.PathLike | None = None,
           limit: int | None = None) -> list[SampleSource]:
    """Samples of a stored run: `wrong` / `correct` (its task's primary metric is 0 / 1), `all`, or doc ids
    `3,17,42`; only those of `task` if given (a task or group name), the first `limit` in run order."""
    from workbench.store import RunStore

    rs = RunStore(store)
    run = rs.load(run_id)
    df = run.samples
    if task is not None:
        df = df[(df["task"] == task) | (df["group"] == task)] if "group" in df.columns else df[df["task"] == task]
        if df.empty:
            raise InterpError(f"run {run_id} has no samples of task {task!r}")
    if selector in ("wrong", "correct"):
        score = _correctness(df, run.manifest)
        df = df[score == (0.0 if selector == "wrong" else 1.0)]
    elif selector != "all":
        ids = [s.strip() for s in selector.split(",") if s.strip()]
        if not ids:
            raise InterpError(f"--samples takes {', '.join(SELECTORS)} or comma-separated doc ids, got {selector!r}")
        df = df[df["doc_id"].astype(str).isin(ids)]
        missing = sorted(set(ids) - set(df["doc_id"].astype(str)))
        if missing:
            raise InterpError(f"run {run_id} has no sample with doc_id {', '.join(missing[:5])}"
                              f"{' in task ' + task if task else ''}")
    if limit is not None:
        df = df.head(limit)
    return [_source(row, run_id, str(rs.root)) for _, row in df.iterrows()]
