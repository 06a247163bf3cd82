"""Paired comparison of stored runs: match their items, then per task, subject and group statistics.

Items are matched by (task, doc_id, prompt_hash): two runs are comparable only on the very same
prompts, scored under the same settings (refusal judge, judge model, sandbox limits: the manifest's
`scoring`), unless the caller allows a deliberate difference, which the report then shows. Every
later run is compared with the first (the baseline). Within one (baseline, candidate,
metric) p-values are corrected (Holm by default) across the headline rows (groups and ungrouped
tasks), and separately across the subjects of each group.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench import settings
from workbench.analysis import stats
from workbench.errors import WorkbenchError
from workbench.scoring import aggregates
from workbench.store import Run, RunStore
from workbench.store.samples import base_metric, better, direction, metric_columns, order_metrics, ratio_parts

KEY = ["task", "doc_id", "prompt_hash"]
# Manifest fields that change from run to run without changing what was measured.
_VOLATILE = ("created", "finished", "timings", "run_id", "status", "hardware.loadavg", "request.tasks")


class ComparisonError(WorkbenchError):
    """Runs that cannot be compared: different items or prompts, or nothing in common to score."""


@dataclass(frozen=True)
class Scope:
    """A set of items judged together: one task, or a group pooled over its tasks (clustered by subject)."""

    kind: str                 # "task" | "group"
    name: str
    subject: str | None = None
    group: str | None = None


@dataclass
class PairedRow:
    """One paired test: candidate minus baseline on one scope and metric."""

    baseline: str
    candidate: str
    scope: Scope
    metric: str
    primary: bool
    stats: stats.PairedComparison
    p_adjusted: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate, "kind": self.scope.kind,
                "name": self.scope.name, "subject": self.scope.subject, "group": self.scope.group,
                "metric": self.metric, "primary": self.primary, **self.stats.to_dict(), "p_adjusted": self.p_adjusted}


@dataclass
class LeaderRow:
    run_id: str
    model: str
    scope: Scope
    metric: str
    estimate: stats.Estimate


@dataclass
class Comparison:
    """Everything a report or gate needs about a set of runs compared with the first."""

    runs: list[Run]
    items: dict[str, pd.DataFrame]          # run_id -> its samples, aligned row for row with the others
    scopes: list[Scope]
    leaderboard: list[LeaderRow]
    paired: list[PairedRow]
    flips: pd.DataFrame
    manifest_diff: list[tuple[str, list[Any]]]
    correction: str
    config_diff: list[tuple[str, list[Any]]] = field(default_factory=list)  # allowed scoring differences

    @property
    def baseline(self) -> Run:
        return self.runs[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [{"run_id": r.run_id, "model": model_label(r)} for r in self.runs],
            "baseline": self.baseline.run_id,
            "correction": self.correction,
            "n_items": len(self.items[self.baseline.run_id]),
            "paired": [p.to_dict() for p in self.paired],
            "leaderboard": [{"run_id": l.run_id, "model": l.model, "kind": l.scope.kind, "name": l.scope.name,
                             "metric": l.metric, **l.estimate.to_dict()} for l in self.leaderboard],
            "flips": {f"{b}..{c}": int(((self.flips.baseline == b) & (self.flips.candidate == c)).sum())
                      for b, c in {(p.baseline, p.candidate) for p in self.paired}},
            "manifest_diff": [{"field": k, "values": v} for k, v in self.manifest_diff],
            "config_diff": [{"setting": k, "values": v} for k, v in self.config_diff],
        }

    def direction(self, metric: str, task: str | None = None) -> str:
        """Which way `metric` is better, as the baseline's manifest records it for `task`."""
        tasks = self.baseline.manifest.get("tasks", {})
        recorded = (tasks.get(task) or {}).get("directions") if task else None
        if recorded is None:
            recorded = next((t.get("directions") for t in tasks.values() if metric in (t.get("directions") or {})), None)
        return direction(metric, recorded)


def model_label(run: Run) -> str:
    m = run.manifest.get("model", {})
    return f"{m.get('spec', '?')} [{m.get('backend', '?')}]"


# ---- matching -----------------------------------------------------------------------------------
def _fmt_items(keys: Sequence[tuple], limit: int = 8) -> str:
    shown = ", ".join(f"{t}#{d}" for t, d, *_ in list(keys)[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def match_items(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The runs' samples sorted by item key so rows line up; raises ComparisonError naming items that differ."""
    ids = list(frames)
    keyed = {}
    for rid, df in frames.items():
        missing = [c for c in KEY if c not in df.columns]
        if missing:
            raise ComparisonError(f"run {rid}'s samples lack column(s) {', '.join(missing)}")
        dup = df.duplicated(KEY)
        if dup.any():
            raise ComparisonError(f"run {rid} holds duplicate items: {_fmt_items(df.loc[dup, KEY].itertuples(index=False))}")
        keyed[rid] = df.sort_values(KEY, kind="stable").reset_index(drop=True)
    base = ids[0]
    base_keys = set(keyed[base][KEY].itertuples(index=False, name=None))
    for rid in ids[1:]:
        keys = set(keyed[rid][KEY].itertuples(index=False, name=None))
        if keys == base_keys:
            continue
        only_a, only_b = sorted(base_keys - keys), sorted(keys - base_keys)
        changed = sorted({k[:2] for k in only_a} & {k[:2] for k in only_b})
        parts = []
        if changed:
            parts.append(f"{len(changed)} with different prompts ({_fmt_items(changed)})")
        only_a = [k for k in only_a if k[:2] not in set(changed)]
        only_b = [k for k in only_b if k[:2] not in set(changed)]
        if only_a:
            parts.append(f"{len(only_a)} only in {base} ({_fmt_items(only_a)})")
        if only_b:
            parts.append(f"{len(only_b)} only in {rid} ({_fmt_items(only_b)})")
        raise ComparisonError(
            f"runs {base} and {rid} do not cover the same items (matched by task, doc_id, prompt_hash): "
            + "; ".join(parts))
    return keyed


# ---- scopes and metrics -------------------------------------------------------------------------
def _group_of(df: pd.DataFrame) -> pd.Series:
    return df["group"].where(df["group"].notna(), None) if "group" in df.columns else pd.Series([None] * len(df))


def scopes_of(df: pd.DataFrame) -> list[Scope]:
    """Groups first (pooled over their tasks), then every task, in the run's order."""
    groups = _group_of(df)
    out = [Scope("group", g) for g in dict.fromkeys(groups.dropna())]
    for task in dict.fromkeys(df["task"]):
        row = df.loc[df["task"] == task].iloc[0]
        grp = row["group"] if "group" in df.columns and pd.notna(row["group"]) else None
        sub = row["subset"] if grp and "subset" in df.columns and pd.notna(row["subset"]) else None
        out.append(Scope("task", task, subject=sub, group=grp))
    return out


def headline_scopes(scopes: Sequence[Scope]) -> list[Scope]:
    """Groups and the tasks outside any group: the rows of a leaderboard."""
    return [s for s in scopes if s.kind == "group" or s.group is None]


def scope_mask(df: pd.DataFrame, scope: Scope) -> np.ndarray:
    col = "group" if scope.kind == "group" else "task"
    return (df[col] == scope.name).to_numpy()


def scope_clusters(df: pd.DataFrame, scope: Scope) -> np.ndarray | None:
    """Subjects for a group (the clustered bootstrap's first stage); None for a single task."""
    if scope.kind != "group" or "subset" not in df.columns:
        return None
    return df.loc[scope_mask(df, scope), "subset"].fillna("").astype(str).to_numpy()


def declared_primary(manifest: dict[str, Any], scope: Scope) -> str | None:
    """The primary metric the scope's task declared (a group: the one its tasks agree on)."""
    tasks = manifest.get("tasks", {})
    if scope.kind == "task":
        return (tasks.get(scope.name) or {}).get("primary_metric")
    declared = {t.get("primary_metric") for t in tasks.values() if t.get("group") == scope.name}
    return declared.pop() if len(declared) == 1 else None


def scope_metrics(frames: Sequence[pd.DataFrame], scope: Scope, declared: str | None = None) -> list[str]:
    """Metrics scored on this scope in every run (per-sample columns, then aggregate metrics such as
    ECE), primary metric first."""
    common = None
    for df in frames:
        part = df.loc[scope_mask(df, scope)]
        ms = [m for m in metric_columns(part) if part[m].notna().any()] + aggregates.available(part)
        common = ms if common is None else [m for m in common if m in ms]
    return order_metrics(common or [], declared)


# ---- the comparison -----------------------------------------------------------------------------
def paired_stats(a: pd.DataFrame, b: pd.DataFrame, scope: Scope, metric: str, *, n_boot: int = 2000,
                 seed: int = 0) -> stats.PairedComparison:
    """Paired comparison of two aligned runs on one scope (clustered by subject for a group); an aggregate
    metric (ECE, ...) by paired bootstrap and a paired swap permutation test of its difference."""
    mask = scope_mask(a, scope)
    if aggregates.is_aggregate(metric) and metric not in a.columns:
        return aggregates.paired(metric, a.loc[mask], b.loc[mask], clusters=scope_clusters(a, scope),
                                 n_boot=n_boot, seed=seed)
    return stats.paired_compare(a.loc[mask, metric].to_numpy(float), b.loc[mask, metric].to_numpy(float),
                                clusters=scope_clusters(a, scope), n_boot=n_boot, seed=seed)


def declared_aggregation(manifest: dict[str, Any], scope: Scope, metric: str) -> str | None:
    """The ratio aggregation (lm-eval's weighted perplexity, bits per byte) the scope's tasks declare for `metric`."""
    tasks = [t for n, t in manifest.get("tasks", {}).items()
             if (n == scope.name if scope.kind == "task" else t.get("group") == scope.name)]
    found = {(t.get("aggregations") or {}).get(base_metric(metric)) for t in tasks}
    return found.pop() if len(found) == 1 else None


def scope_estimate(df: pd.DataFrame, scope: Scope, metric: str, *, n_boot: int = 2000, seed: int = 0,
                   aggregation: str | None = None) -> stats.Estimate:
    """The scope's value of `metric`: a mean (clustered for a group), its declared ratio over items, or an
    aggregate metric (a statistic of the items, e.g. ECE)."""
    num, den = ratio_parts(metric)
    if aggregation and num in df.columns and den in df.columns:
        part = df.loc[scope_mask(df, scope)]
        return stats.ratio_estimate(part[num], part[den], aggregation, n_boot=n_boot, seed=seed)
    clusters = scope_clusters(df, scope)
    if aggregates.is_aggregate(metric) and metric not in df.columns:
        return aggregates.estimate(metric, df.loc[scope_mask(df, scope)], clusters=clusters, n_boot=n_boot, seed=seed)
    values = df.loc[scope_mask(df, scope), metric].to_numpy(float)
    if clusters is None:
        return stats.mean_estimate(values, n_boot=n_boot, seed=seed)
    return stats.clustered_estimate(values, clusters, n_boot=n_boot, seed=seed)


def family_key(row: PairedRow) -> tuple[str, str]:
    """Which p-values are corrected together: per metric, the headline rows (groups and ungrouped
    tasks) as one family and each group's subjects as another, so that dozens of one-item subjects
    do not swamp the headline tests."""
    return row.metric, row.scope.group if row.scope.kind == "task" and row.scope.group else ""


def _scoring_value(run: Run, task: str, key: str) -> Any:
    """The setting `key` a run's task was scored with (recorded per task; older runs: run-wide, else legacy)."""
    recorded = (run.manifest.get("tasks", {}).get(task) or {}).get("scoring") or {}
    if key in recorded:
        return recorded[key]
    return (run.manifest.get("scoring") or settings.LEGACY_SCORING.to_dict()).get(key)


def scoring_diff(runs: Sequence[Run]) -> list[tuple[str, list[Any]]]:
    """(task: setting, value per run) for each scoring setting a shared task depends on that differs,
    and for each shared task whose version (its prompt or scoring code) differs.

    A task's manifest names the settings its metrics depend on (the refusal judge for the safety sets,
    sandbox limits for HumanEval); other settings cannot change its scores and are not compared.
    """
    shared = set.intersection(*(set(r.manifest.get("tasks", {})) for r in runs))
    out = []
    for task in sorted(shared):
        versions = [(r.manifest["tasks"][task] or {}).get("version") for r in runs]
        if any(v != versions[0] for v in versions[1:]):  # the task's scoring changed between versions
            out.append((f"{task}: task version", versions))
        keys = dict.fromkeys(k for r in runs for k in ((r.manifest["tasks"][task] or {}).get("scoring") or {}))
        for key in keys:
            values = [_scoring_value(r, task, key) for r in runs]
            if any(v != values[0] for v in values[1:]):
                out.append((f"{task}: {key}", values))
    return out


def load_runs(run_ids: Sequence[str], store: str | None = None) -> list[Run]:
    if len(run_ids) < 2:
        raise ComparisonError("compare needs at least two runs")
    if len(set(run_ids)) != len(run_ids):
        raise ComparisonError("the same run is named twice")
    rs = RunStore(store)
    return [rs.load(r) for r in run_ids]


def compare_runs(runs: Sequence[Run], *, correction: str = "holm", n_boot: int = 2000, seed: int = 0,
                 allow_config_diff: bool = False) -> Comparison:
    """Leaderboard, paired tests (every run against the first), flipped items and manifest diff.

    Runs scored under different settings (judge, sandbox limits) are refused unless `allow_config_diff`.
    """
    if correction not in stats.CORRECTIONS:
        raise ComparisonError(f"unknown correction {correction!r}; choose from {', '.join(stats.CORRECTIONS)}")
    runs = list(runs)
    config_diff = scoring_diff(runs)
    if config_diff and not allow_config_diff:
        shown = "; ".join(f"{k}: " + " vs ".join(map(str, v)) for k, v in config_diff)
        raise ComparisonError(f"runs were scored under different settings ({shown}); a difference in scores would "
                              "not be a difference between models. Pass --allow-config-diff to compare anyway")
    items = match_items({r.run_id: r.samples for r in runs})
    base = runs[0]
    a = items[base.run_id]
    scopes = scopes_of(a)
    metrics = {s: scope_metrics(list(items.values()), s, declared_primary(base.manifest, s)) for s in scopes}
    if not any(metrics.values()):
        raise ComparisonError("the runs share no scored metric column")

    leaderboard = [LeaderRow(r.run_id, model_label(r), s, metrics[s][0],
                             scope_estimate(items[r.run_id], s, metrics[s][0], n_boot=n_boot, seed=seed,
                                            aggregation=declared_aggregation(r.manifest, s, metrics[s][0])))
                   for r in runs for s in headline_scopes(scopes) if metrics[s]]
    paired: list[PairedRow] = []
    for cand in runs[1:]:
        b = items[cand.run_id]
        rows = [PairedRow(base.run_id, cand.run_id, s, m, i == 0, paired_stats(a, b, s, m, n_boot=n_boot, seed=seed))
                for s in scopes for i, m in enumerate(metrics[s])]
        for key in dict.fromkeys(map(family_key, rows)):
            family = [r for r in rows if family_key(r) == key]
            for r, p in zip(family, stats.adjust_pvalues([r.stats.p_value for r in family], correction)):
                r.p_adjusted = float(p)
        paired.extend(rows)
    return Comparison(runs, items, scopes, leaderboard, paired, flipped_items(runs, items, scopes, metrics),
                      manifest_diff([r.manifest for r in runs]), correction, config_diff)


# ---- flips --------------------------------------------------------------------------------------
def answer_text(row: pd.Series | dict) -> str:
    """What the model answered: its generation, else the choice it ranked first."""
    gen = row.get("generation")
    if isinstance(gen, str) and gen:
        return gen
    pred, choices = row.get("prediction"), row.get("choices")
    try:
        return str(choices[int(pred)])
    except (TypeError, ValueError, IndexError, KeyError):
        return "" if pred is None else str(pred)


def flipped_items(runs: Sequence[Run], items: dict[str, pd.DataFrame], scopes: Sequence[Scope],
                  metrics: dict[Scope, list[str]]) -> pd.DataFrame:
    """Items whose binary primary metric changed between the baseline and each candidate."""
    base = runs[0].run_id
    a = items[base]
    out = []
    for cand in runs[1:]:
        b = items[cand.run_id]
        for s in scopes:
            if s.kind != "task" or not metrics[s]:
                continue
            m = metrics[s][0]
            mask = scope_mask(a, s)
            va, vb = a.loc[mask, m], b.loc[mask, m]
            if not stats.is_binary(va.dropna(), vb.dropna()):
                continue
            recorded = (runs[0].manifest.get("tasks", {}).get(s.name) or {}).get("directions")
            for idx in va.index[(va != vb) & va.notna() & vb.notna()]:
                ra, rb = a.loc[idx], b.loc[idx]
                target = ra.get("target_text") if isinstance(ra.get("target_text"), str) else ra.get("target")
                improved = better(float(rb[m]) - float(ra[m]), m, recorded)
                out.append({"baseline": base, "candidate": cand.run_id, "task": s.name, "subject": s.subject,
                            "doc_id": int(ra["doc_id"]), "metric": m,
                            "direction": {True: "wrong→right", False: "right→wrong"}.get(improved, "changed"),
                            "prompt": ra["prompt"], "target": str(target), "answer_baseline": answer_text(ra),
                            "answer_candidate": answer_text(rb)})
    cols = ["baseline", "candidate", "task", "subject", "doc_id", "metric", "direction", "prompt", "target",
            "answer_baseline", "answer_candidate"]
    return pd.DataFrame(out, columns=cols)


# ---- manifest diff ------------------------------------------------------------------------------
def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            label = v.get("path", i) if isinstance(v, dict) else i
            out.update(_flatten(v, f"{prefix}[{label}]"))
        return out
    if isinstance(obj, list):
        text = json.dumps(obj)
        return {prefix: text if len(text) <= 80 else f"{len(obj)} values, sha {_short_hash(text)}"}
    return {prefix: obj}


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def manifest_diff(manifests: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(field, values per run) for every manifest field whose value differs between the runs."""
    flat = [_flatten(m) for m in manifests]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    out = []
    for k in keys:
        if any(k == v or k.startswith(v + ".") or k.startswith(v + "[") for v in _VOLATILE):
            continue
        vals = [f.get(k) for f in flat]
        if any(v != vals[0] for v in vals[1:]):
            out.append((k, vals))
    return out


__all__ = ["ComparisonError", "Comparison", "PairedRow", "Scope", "compare_runs", "load_runs", "match_items",
           "paired_stats", "scopes_of", "headline_scopes", "manifest_diff", "flipped_items"]
