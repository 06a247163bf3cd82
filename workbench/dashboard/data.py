"""What the dashboard reads: runs, leaderboard cells, sample rows and the artifacts linked to them.

Nothing here writes: the run store is only read, and artifacts are added only by `jobs` (when enabled). Complete runs and artifacts are
immutable once published (atomic rename), so they are cached by id for the life of the process.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.analysis.compare import (
    Comparison,
    Scope,
    answer_text,
    compare_runs,
    declared_primary,
    load_runs,
    match_items,
    model_label,
)
from workbench.analysis.text import as_text, metric_label, one_line, run_label, run_labels
from workbench.interp import artifacts
from workbench.store import Run, RunStore, validate_run_id
from workbench.store.artifacts import ArtifactStore
from workbench.store.samples import better, direction, is_correctness, metric_columns, primary_metric

FLIP_STATES = ("right→wrong", "wrong→right", "changed", "same")
Problems = list[tuple[Path, str]]


@dataclass(frozen=True)
class LeaderboardColumn:
    field: str      # AG Grid field (scope names may hold characters AG Grid reads as paths)
    scope: str      # group or ungrouped task
    kind: str       # "group" | "task"
    metric: str | None = None     # the primary metric, when every run agrees on it
    direction: str = "higher"


def headline_scopes(run: Run) -> list[tuple[str, str]]:
    """(kind, name) of a run's groups and the tasks outside any group, from metrics.json and the manifest."""
    tasks = run.manifest.get("tasks", {})
    out = [("group", g) for g in run.metrics.get("groups", {})]
    out += [("task", t) for t in run.metrics.get("tasks", {}) if not (tasks.get(t) or {}).get("group")]
    return out


def recorded_directions(manifest: dict[str, Any], kind: str, scope: str) -> dict[str, str] | None:
    """The metric directions a run's manifest records for a task (a group: those of its first task)."""
    tasks = manifest.get("tasks") or {}
    if kind == "task":
        return (tasks.get(scope) or {}).get("directions")
    return next(((t or {}).get("directions") for t in tasks.values()
                 if isinstance(t, dict) and t.get("group") == scope and t.get("directions")), None)


def run_info(run: Run, label: str | None = None) -> dict[str, Any]:
    m = run.manifest
    model = m.get("model", {})
    return {"run_id": run.run_id, "label": label or as_text(run_label(run)), "model": str(model.get("spec", "?")),
            "backend": str(model.get("backend", "?")), "quantization": str(model.get("quantization") or ""),
            "suite": str(m.get("suite") or "–"), "created": str(m.get("created", "")),
            "n_samples": int(m.get("n_samples") or 0)}


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _headline(run: Run, kind: str, scope: str) -> tuple[str, dict[str, Any]] | None:
    """(primary metric, its entry in metrics.json) of one scope of a run, or None."""
    entry = (run.metrics.get("groups" if kind == "group" else "tasks") or {}).get(scope)
    if not isinstance(entry, dict):
        return None
    metric = primary_metric([m for m, e in entry.items() if isinstance(e, dict)],
                            declared_primary(run.manifest, Scope(kind, scope)))
    return None if metric is None else (metric, entry[metric])


def leaderboard(runs: Sequence[Run], scopes: Sequence[tuple[str, str]] | None = None,
                labels: dict[str, str] | None = None) -> tuple[list[LeaderboardColumn], list[dict[str, Any]]]:
    """Runs x headline scopes. Per cell: the scope's primary metric (`<field>`), its 95% CI (`_lo`, `_hi`),
    name and direction (`_metric`, `_dir`), and `_best` on the best run of the column by that direction."""
    labels = labels or run_labels(runs)
    scopes = list(scopes) if scopes is not None else list(dict.fromkeys(s for r in runs for s in headline_scopes(r)))
    heads = {(r.run_id, s): _headline(r, *s) for r in runs for s in scopes}
    cols = []
    for i, (kind, name) in enumerate(scopes):
        found = [(h[0], direction(h[0], recorded_directions(r.manifest, kind, name)))
                 for r in runs if (h := heads[(r.run_id, (kind, name))])]
        metrics = {m for m, _ in found}
        cols.append(LeaderboardColumn(f"s{i}", name, kind, metrics.pop() if len(metrics) == 1 else None,
                                      found[0][1] if found else "higher"))
    rows = []
    for r in runs:
        row = run_info(r, labels.get(r.run_id))
        for c in cols:
            h = heads[(r.run_id, (c.kind, c.scope))]
            if h is None:
                row[c.field] = None
                continue
            metric, e = h
            d = direction(metric, recorded_directions(r.manifest, c.kind, c.scope))
            row.update({c.field: _number(e.get("value")), c.field + "_lo": _number(e.get("ci95_low")),
                        c.field + "_hi": _number(e.get("ci95_high")), c.field + "_metric": metric,
                        c.field + "_dir": d, c.field + "_label": metric_label(metric, d)})
        rows.append(row)
    for c in cols:
        if c.metric is None:
            continue
        vals = [row[c.field] for row in rows if row.get(c.field) is not None]
        if len(vals) > 1:
            key = {"higher": lambda v: -v, "lower": lambda v: v, "zero": abs}[c.direction]
            best = min(vals, key=key)
            for row in rows:
                row[c.field + "_best"] = row.get(c.field) is not None and key(row[c.field]) == key(best)
    return cols, rows


def filter_rows(rows: Sequence[dict[str, Any]], **wanted: Sequence[str] | None) -> list[dict[str, Any]]:
    """Rows whose field is in each non-empty selection (e.g. suite=['quick'], backend=['gguf'])."""
    return [r for r in rows if all(not sel or r.get(k) in sel for k, sel in wanted.items())]


# ---- samples ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskMetric:
    """What one task of a run is judged on in the explorer."""

    metric: str
    direction: str
    correctness: bool       # right/wrong per item (acc, exact_match, ...), not a rate like refusal

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.direction)


def task_metrics(df: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, TaskMetric]:
    """task -> its primary metric (the task's declared one, else lm-eval's usual order) and direction."""
    tasks = manifest.get("tasks") or {}
    out = {}
    for task, part in df.groupby("task", sort=False):
        ms = [m for m in metric_columns(part) if part[m].notna().any()]
        t = tasks.get(task) or {}
        m = primary_metric(ms, t.get("primary_metric"))
        if m is not None:
            out[str(task)] = TaskMetric(m, direction(m, t.get("directions")), is_correctness(m))
    return out


def _primary_of(df: pd.DataFrame, metrics: dict[str, TaskMetric]) -> pd.Series:
    """Per row, the value of its task's primary metric."""
    out = pd.Series(np.nan, index=df.index)
    for task, part in df.groupby("task", sort=False):
        tm = metrics.get(str(task))
        if tm is not None:
            out.loc[part.index] = part[tm.metric].astype(float)
    return out


def sample_key(task: str, doc_id: Any) -> str:
    return f"{task}#{doc_id}"


def _keys(df: pd.DataFrame) -> list[str]:
    return [sample_key(t, d) for t, d in zip(df["task"], df["doc_id"])]


def flip_states(run_df: pd.DataFrame, base_df: pd.DataFrame, manifest: dict[str, Any] | None = None) -> dict[str, str]:
    """sample key -> right→wrong / wrong→right / same on each task's primary metric, judged by its direction
    (`changed` for metrics whose better value depends on the sign, such as bias scores)."""
    metrics = task_metrics(run_df, manifest or {})
    ours, theirs = _primary_of(run_df, metrics), _primary_of(base_df, metrics)
    b = dict(zip(_keys(base_df), theirs))
    out = {}
    for k, t, v in zip(_keys(run_df), run_df["task"], ours):
        w = b.get(k)
        if w is None or w != w or v != v:
            continue
        tm = metrics[str(t)]
        improved = better(v - w, tm.metric, {tm.metric: tm.direction})
        out[k] = "same" if v == w else {True: "wrong→right", False: "right→wrong"}.get(improved, "changed")
    return out


def _verdict(score: float, tm: TaskMetric | None) -> str:
    """'yes'/'no'/'partial' for a correctness metric; '–' for anything else (a refusal is not "correct")."""
    if tm is None or not tm.correctness or score != score:
        return "–"
    return "yes" if score >= 1 else ("no" if score <= 0 else "partial")


def sample_rows(df: pd.DataFrame, manifest: dict[str, Any] | None = None, *, flips: dict[str, str] | None = None,
                linked: dict[str, list[dict[str, Any]]] | None = None,
                baseline: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Light grid rows (no prompts): key, task, doc_id, metric, score, correct, answer (and the baseline's),
    target, flip, artifacts."""
    metrics = task_metrics(df, manifest or {})
    score = _primary_of(df, metrics).tolist()
    target = df["target_text"] if "target_text" in df.columns else df.get("target", pd.Series("", index=df.index))
    gens = df["generation"].tolist() if "generation" in df.columns else [None] * len(df)
    preds = df["prediction"].tolist() if "prediction" in df.columns else [None] * len(df)
    choices = df["choices"].tolist() if "choices" in df.columns else [None] * len(df)
    base_answers = None
    if baseline is not None:
        base_answers = dict(zip(_keys(baseline), (one_line(answer_text(r)) for r in baseline.to_dict("records"))))
    rows = []
    for key, task, doc, s, tgt, gen, pred, ch in zip(_keys(df), df["task"], df["doc_id"], score, target.tolist(),
                                                     gens, preds, choices):
        tm = metrics.get(str(task))
        row = {"key": key, "task": str(task), "doc_id": int(doc) if str(doc).isdigit() else str(doc),
               "metric": tm.label if tm else "–", "score": None if s != s else round(float(s), 4),
               "correct": _verdict(s, tm),
               "answer": "(empty generation)" if gen == "" else one_line(answer_text({"generation": gen,
                                                                                        "prediction": pred,
                                                                                        "choices": ch})),
               "target": one_line(tgt), "flip": (flips or {}).get(key, "–"),
               "artifacts": len((linked or {}).get(key, []))}
        if base_answers is not None:
            row["baseline_answer"] = base_answers.get(key, "–")
        rows.append(row)
    return rows


def filter_samples(rows: Sequence[dict[str, Any]], *, tasks: Sequence[str] | None = None, correct: str | None = None,
                   flip: str | None = None) -> list[dict[str, Any]]:
    """Grid rows filtered by task, correctness (yes/no/partial) and flip status ('changed' = any change)."""
    out = []
    for r in rows:
        if tasks and r["task"] not in tasks:
            continue
        if correct and correct != "all" and r["correct"] != correct:
            continue
        if flip and flip != "all":
            if flip == "changed" and r["flip"] not in FLIP_STATES[:3]:
                continue
            if flip != "changed" and r["flip"] != flip:
                continue
        out.append(r)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def sample_detail(df: pd.DataFrame, key: str, manifest: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One sample's full record: prompt, target, the answer (a generation, or the picked choice with every
    choice's log-likelihood), lm-eval's filtered predictions, scores with their directions."""
    task, _, doc = key.rpartition("#")
    rows = df[(df["task"] == task) & (df["doc_id"].astype(str) == doc)]
    if rows.empty:
        return None
    r = rows.iloc[0]
    choices = _plain(r.get("choices"))
    lls = _plain(r.get("loglikelihoods"))
    greedy = _plain(r.get("is_greedy"))
    pred = r.get("prediction")
    table = []
    if isinstance(choices, list):
        for i, c in enumerate(choices):
            table.append({"choice": str(c),
                          "loglikelihood": float(lls[i]) if isinstance(lls, list) and i < len(lls) else None,
                          "is_greedy": bool(greedy[i]) if isinstance(greedy, list) and i < len(greedy) else None,
                          "predicted": str(pred) == str(i)})
    target = r.get("target_text") if isinstance(r.get("target_text"), str) else r.get("target")
    gen = r.get("generation")
    tasks = (manifest or {}).get("tasks") or {}
    recorded = (tasks.get(task) or {}).get("directions")
    tm = task_metrics(rows, manifest or {}).get(task)
    filtered = {c.split(",", 1)[1]: as_text(r[c]) for c in rows.columns
                if c.startswith("prediction,") and isinstance(r[c], str)}
    return {"key": key, "task": task, "doc_id": doc, "prompt": str(r.get("prompt", "")),
            "target": "" if target is None else str(target), "answer": answer_text(r),
            "generation": gen if isinstance(gen, str) else None, "choices": table, "predictions": filtered,
            "primary": tm.metric if tm else None,
            "scores": {m: _plain(r[m]) for m in metric_columns(rows) if r[m] == r[m]},
            "directions": {m: direction(m, recorded) for m in metric_columns(rows)}}


# ---- the read-side facade --------------------------------------------------------------------------
class DashboardData:
    """Runs, comparisons and artifacts for one store and artifact root, cached per process."""

    def __init__(self, store_dir: str | os.PathLike | None, artifacts_dir: str | os.PathLike | None) -> None:
        self.store = RunStore(store_dir)
        self.artifacts_root: Path = artifacts.artifacts_dir(artifacts_dir)
        self._runs: dict[str, Run] = {}
        # functools' LRU is thread-safe (gunicorn threads, werkzeug's threaded server).
        self.samples = functools.lru_cache(16)(self._samples)
        self.comparison = functools.lru_cache(8)(self._comparison)
        self.flips = functools.lru_cache(16)(self._flips)
        self._artifact = functools.lru_cache(16)(self._load_artifact)
        self.jobs = None  # a jobs.JobRunner when the app lets the sample panel create artifacts

    def scan(self) -> tuple[list[Run], Problems]:
        """(complete runs oldest first, [(path, why)] for each store entry that could not be read).

        Every call re-reads the store, so new runs show up and a repaired one comes back."""
        runs, bad = self.store.scan()
        for r in runs:
            self._runs.setdefault(r.run_id, r)
        return [self._runs[r.run_id] for r in runs], bad

    def runs(self) -> list[Run]:
        """Complete runs, oldest first; unreadable entries are left out (see `scan`)."""
        return self.scan()[0]

    def run(self, run_id: str) -> Run:
        validate_run_id(run_id)
        if run_id not in self._runs:
            self._runs[run_id] = self.store.load(run_id)
        return self._runs[run_id]

    def _samples(self, run_id: str) -> pd.DataFrame:
        return self.run(run_id).samples

    def _comparison(self, run_ids: tuple[str, ...], correction: str = "holm") -> Comparison:
        return compare_runs(load_runs(list(run_ids), self.store.root), correction=correction)

    def _flips(self, run_id: str, baseline: str) -> dict[str, str]:
        """Flip status of each of run_id's samples against the baseline (same items required)."""
        match_items({baseline: self.samples(baseline), run_id: self.samples(run_id)})
        return flip_states(self.samples(run_id), self.samples(baseline), self.run(run_id).manifest)

    def artifact_scan(self) -> tuple[list[dict[str, Any]], Problems]:
        """(manifests of complete artifacts oldest first, [(path, why)] for each that could not be read)."""
        return ArtifactStore(self.artifacts_root).scan()

    def artifact_index(self) -> list[dict[str, Any]]:
        return self.artifact_scan()[0]

    def linked_artifacts(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """sample key -> manifests of artifacts whose source links this run's sample."""
        out: dict[str, list[dict[str, Any]]] = {}
        for m in self.artifact_index():
            src = m.get("source")
            if isinstance(src, dict) and src.get("run_id") == run_id and src.get("task") is not None:
                out.setdefault(sample_key(src["task"], src.get("doc_id")), []).append(m)
        return out

    def artifact(self, artifact_id: str) -> Any:
        return self._artifact(artifacts.validate_artifact_id(artifact_id))

    def _load_artifact(self, artifact_id: str) -> Any:
        return artifacts.load(artifact_id, self.artifacts_root)


__all__ = ["DashboardData", "leaderboard", "filter_rows", "sample_rows", "filter_samples", "sample_detail",
           "flip_states", "model_label", "task_metrics"]
