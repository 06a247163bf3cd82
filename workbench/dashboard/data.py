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

from workbench.analysis.compare import Comparison, answer_text, compare_runs, load_runs, match_items, model_label
from workbench.interp import artifacts
from workbench.store import Run, RunStore, validate_run_id
from workbench.store.samples import fmt, metric_columns, primary_metric, primary_scores

FLIP_STATES = ("right→wrong", "wrong→right", "same")
_ANSWER_CHARS = 80


@dataclass(frozen=True)
class LeaderboardColumn:
    field: str      # AG Grid field (scope names may hold characters AG Grid reads as paths)
    scope: str      # group or ungrouped task
    kind: str       # "group" | "task"


def headline_scopes(run: Run) -> list[tuple[str, str]]:
    """(kind, name) of a run's groups and the tasks outside any group, from metrics.json and the manifest."""
    tasks = run.manifest.get("tasks", {})
    out = [("group", g) for g in run.metrics.get("groups", {})]
    out += [("task", t) for t in run.metrics.get("tasks", {}) if not (tasks.get(t) or {}).get("group")]
    return out


def run_info(run: Run) -> dict[str, Any]:
    m = run.manifest
    model = m.get("model", {})
    return {"run_id": run.run_id, "model": str(model.get("spec", "?")), "backend": str(model.get("backend", "?")),
            "quantization": str(model.get("quantization") or ""), "suite": str(m.get("suite") or "–"),
            "created": str(m.get("created", "")), "n_samples": int(m.get("n_samples") or 0)}


def leaderboard(runs: Sequence[Run]) -> tuple[list[LeaderboardColumn], list[dict[str, Any]]]:
    """Runs x headline scopes: each cell 'value [ci low, ci high]' of the scope's primary metric."""
    scopes = list(dict.fromkeys(s for r in runs for s in headline_scopes(r)))
    cols = [LeaderboardColumn(f"s{i}", name, kind) for i, (kind, name) in enumerate(scopes)]
    rows = []
    for r in runs:
        row = run_info(r)
        for c in cols:
            entry = r.metrics.get("groups" if c.kind == "group" else "tasks", {}).get(c.scope)
            metric = primary_metric(entry) if entry else None
            if metric is None:
                row[c.field] = None
                continue
            e = entry[metric]
            row[c.field] = f"{fmt(e.get('value'))} [{fmt(e.get('ci95_low'))}, {fmt(e.get('ci95_high'))}]"
            row[c.field + "_metric"] = metric
        rows.append(row)
    return cols, rows


def filter_rows(rows: Sequence[dict[str, Any]], **wanted: Sequence[str] | None) -> list[dict[str, Any]]:
    """Rows whose field is in each non-empty selection (e.g. suite=['quick'], backend=['gguf'])."""
    return [r for r in rows if all(not sel or r.get(k) in sel for k, sel in wanted.items())]


# ---- samples ---------------------------------------------------------------------------------------
def _short(text: Any) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    s = " ".join(s.split())
    return s if len(s) <= _ANSWER_CHARS else s[: _ANSWER_CHARS - 1] + "…"


def sample_key(task: str, doc_id: Any) -> str:
    return f"{task}#{doc_id}"


def flip_states(run_df: pd.DataFrame, base_df: pd.DataFrame) -> dict[str, str]:
    """sample key -> right→wrong / wrong→right / same, judged on each task's primary metric (binary or not)."""
    ours, theirs = primary_scores(run_df), primary_scores(base_df)
    b = dict(zip((sample_key(t, d) for t, d in zip(base_df["task"], base_df["doc_id"])), theirs))
    out = {}
    for t, d, v in zip(run_df["task"], run_df["doc_id"], ours):
        k = sample_key(t, d)
        w = b.get(k)
        if w is None or w != w or v != v:
            continue
        out[k] = "same" if v == w else ("wrong→right" if v > w else "right→wrong")
    return out


def sample_rows(df: pd.DataFrame, *, flips: dict[str, str] | None = None,
                linked: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Light grid rows (no prompts): key, task, doc_id, score, correct, answer, target, flip, artifacts."""
    score = primary_scores(df)
    target = df["target_text"] if "target_text" in df.columns else df.get("target", pd.Series("", index=df.index))
    rows = []
    for idx, r in df.iterrows():
        key = sample_key(r["task"], r["doc_id"])
        s = score.loc[idx]
        rows.append({"key": key, "task": str(r["task"]), "doc_id": int(r["doc_id"]) if str(r["doc_id"]).isdigit() else str(r["doc_id"]),
                     "score": None if s != s else round(float(s), 4),
                     "correct": "–" if s != s else ("yes" if s >= 1 else ("no" if s <= 0 else "partial")),
                     "answer": _short(answer_text(r)), "target": _short(target.loc[idx]),
                     "flip": (flips or {}).get(key, "–"), "artifacts": len((linked or {}).get(key, []))})
    return rows


def filter_samples(rows: Sequence[dict[str, Any]], *, tasks: Sequence[str] | None = None, correct: str | None = None,
                   flip: str | None = None) -> list[dict[str, Any]]:
    """Grid rows filtered by task, correctness (yes/no/partial) and flip status ('changed' = either direction)."""
    out = []
    for r in rows:
        if tasks and r["task"] not in tasks:
            continue
        if correct and correct != "all" and r["correct"] != correct:
            continue
        if flip and flip != "all":
            if flip == "changed" and r["flip"] not in FLIP_STATES[:2]:
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


def sample_detail(df: pd.DataFrame, key: str) -> dict[str, Any] | None:
    """One sample's full record (prompt, target, choices with log-likelihoods, generation, scores)."""
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
    return {"key": key, "task": task, "doc_id": doc, "prompt": str(r.get("prompt", "")),
            "target": "" if target is None else str(target), "answer": answer_text(r),
            "generation": gen if isinstance(gen, str) else None, "choices": table,
            "scores": {m: _plain(r[m]) for m in metric_columns(rows) if r[m] == r[m]}}


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

    def runs(self) -> list[Run]:
        """Complete runs, oldest first; new runs are picked up on every call."""
        root = self.store.root
        if not root.is_dir():
            return []
        for p in root.iterdir():
            if p.name.startswith(".") or p.name in self._runs or not (p / "metrics.json").is_file():
                continue
            self._runs[p.name] = self.store.load(p.name)
        return sorted(self._runs.values(), key=lambda r: (r.manifest.get("created", ""), r.run_id))

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
        return flip_states(self.samples(run_id), self.samples(baseline))

    def artifact_index(self) -> list[dict[str, Any]]:
        return artifacts.list_artifacts(self.artifacts_root)

    def linked_artifacts(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """sample key -> manifests of artifacts whose source links this run's sample."""
        out: dict[str, list[dict[str, Any]]] = {}
        for m in self.artifact_index():
            src = m.get("source") or {}
            if src.get("run_id") == run_id and src.get("task") is not None:
                out.setdefault(sample_key(src["task"], src.get("doc_id")), []).append(m)
        return out

    def artifact(self, artifact_id: str) -> Any:
        return self._artifact(artifacts.validate_artifact_id(artifact_id))

    def _load_artifact(self, artifact_id: str) -> Any:
        return artifacts.load(artifact_id, self.artifacts_root)


__all__ = ["DashboardData", "leaderboard", "filter_rows", "sample_rows", "filter_samples", "sample_detail",
           "flip_states", "model_label"]
