"""CI regression gate: a candidate run against a baseline under a per-task policy.

A check fails (a regression) when the candidate's paired drop (a move in the metric's worse direction:
down for accuracy, up for over-refusal, away from 0 for a bias score) exceeds the task's `max_drop` AND the
change is significant at the task's `alpha` after correction across all gated checks. A check with
fewer matched items than `min_items` cannot be judged. Exit codes: 0 pass, 1 regression, 2 unusable
input (unreadable policy, missing runs, mismatched items, runs scored under different settings, too
few items).

Policy YAML (every key optional)::

    metric: acc          # default: each task's primary metric
    max_drop: 0.0        # absolute drop tolerated before a significant drop fails
    alpha: 0.05
    min_items: 10
    correction: holm     # holm | bh | bonferroni | none
    tasks:               # per-task or per-group overrides; naming a task also gates it
      arc_easy: {max_drop: 0.02}
      mmlu: {alpha: 0.01, min_items: 100}
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.analysis import stats
from workbench.analysis.compare import (
    Scope,
    declared_primary,
    headline_scopes,
    match_items,
    paired_stats,
    scope_metrics,
    scopes_of,
    scoring_diff,
)
from workbench.errors import WorkbenchError
from workbench.store import Run
from workbench.store.samples import direction, fmt

EXIT_PASS, EXIT_REGRESSION, EXIT_UNUSABLE = 0, 1, 2


class GateError(WorkbenchError):
    """The gate cannot judge: bad policy, missing task or too few items."""


@dataclass(frozen=True)
class Limits:
    """The limits one gated task is held to."""

    max_drop: float = 0.0
    alpha: float = 0.05
    min_items: int = 10
    metric: str | None = None


@dataclass
class Policy:
    defaults: Limits = field(default_factory=Limits)
    correction: str = "holm"
    tasks: dict[str, Limits] = field(default_factory=dict)

    def limits(self, name: str) -> Limits:
        return self.tasks.get(name, self.defaults)


_LIMIT_KEYS = {f.name for f in fields(Limits)}


def _limits(raw: Any, base: Limits, where: str) -> Limits:
    if not isinstance(raw, dict):
        raise GateError(f"policy {where}: expected a mapping, got {type(raw).__name__}")
    unknown = {str(k) for k in raw} - _LIMIT_KEYS
    if unknown:
        raise GateError(f"policy {where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_LIMIT_KEYS))}")
    merged = {**asdict(base), **raw}
    for key, kind in (("max_drop", "a finite number"), ("alpha", "a finite number"), ("min_items", "a whole number")):
        v = merged[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or (kind == "a whole number" and not isinstance(v, int)):
            raise GateError(f"policy {where}: {key} must be {kind}, got {v!r}")
    if merged["metric"] is not None and not isinstance(merged["metric"], str):
        raise GateError(f"policy {where}: metric must be a metric name, got {merged['metric']!r}")
    lim = Limits(max_drop=float(merged["max_drop"]), alpha=float(merged["alpha"]), min_items=merged["min_items"],
                 metric=merged["metric"])
    if lim.max_drop < 0 or not 0 < lim.alpha < 1 or lim.min_items < 1:
        raise GateError(f"policy {where}: need max_drop >= 0, 0 < alpha < 1 and min_items >= 1")
    return lim


def parse_policy(raw: Any) -> Policy:
    """A Policy from the YAML mapping (None gives the defaults)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise GateError("policy: the file must hold a mapping")
    tasks_raw = raw.get("tasks") or {}
    correction = raw.get("correction", "holm")
    if not isinstance(correction, str) or correction not in stats.CORRECTIONS:
        raise GateError(f"policy: unknown correction {correction!r}; choose from {', '.join(stats.CORRECTIONS)}")
    if not isinstance(tasks_raw, dict):
        raise GateError("policy: `tasks` must map task names to limits")
    defaults = _limits({k: v for k, v in raw.items() if k not in ("tasks", "correction")}, Limits(), "top level")
    return Policy(defaults, correction, {str(t): _limits({} if v is None else v, defaults, f"tasks.{t}") for t, v in tasks_raw.items()})


def load_policy(path: str | Path | None) -> Policy:
    import yaml

    if path is None:
        return Policy()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"policy file {path} not found") from None
    except IsADirectoryError:
        raise GateError(f"policy {path} is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise GateError(f"policy file {path} is not text (binary?)") from None
    except OSError as exc:
        raise GateError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise GateError(f"policy file {path} is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from None
    return parse_policy(raw)


@dataclass
class Check:
    """One gated scope's verdict."""

    name: str
    kind: str
    metric: str
    limits: Limits
    status: str                           # "pass" | "regression" | "insufficient"
    reason: str
    stats: stats.PairedComparison | None = None
    p_adjusted: float = float("nan")


@dataclass
class GateResult:
    baseline: str
    candidate: str
    policy: Policy
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        if any(c.status == "regression" for c in self.checks):
            return EXIT_REGRESSION
        if any(c.status == "insufficient" for c in self.checks):
            return EXIT_UNUSABLE
        return EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "PASS", EXIT_REGRESSION: "REGRESSION", EXIT_UNUSABLE: "UNUSABLE"}[self.exit_code]


def _gated_scopes(scopes: Sequence[Scope], policy: Policy) -> list[Scope]:
    by_name = {s.name: s for s in scopes}
    missing = [t for t in policy.tasks if t not in by_name]
    if missing:
        raise GateError(f"policy names task(s) not in the runs: {', '.join(missing)}; "
                        f"the runs hold {', '.join(s.name for s in headline_scopes(scopes))}")
    chosen = headline_scopes(scopes) + [by_name[t] for t in policy.tasks]
    return list(dict.fromkeys(chosen))


def _worsening(s: stats.PairedComparison, way: str) -> float:
    """How far the candidate moved in the metric's worse direction (negative: it improved)."""
    if way == "zero":
        return abs(s.mean_b) - abs(s.mean_a)
    return -s.delta if way == "higher" else s.delta


def evaluate_gate(baseline: Run, candidate: Run, policy: Policy, *, n_boot: int = 2000, seed: int = 0,
                  allow_config_diff: bool = False) -> GateResult:
    """Judge the candidate against the baseline, item by item, under the policy."""
    diff = scoring_diff([baseline, candidate])
    if diff and not allow_config_diff:
        shown = "; ".join(f"{k}: {v[0]} vs {v[1]}" for k, v in diff)
        raise GateError(f"the runs were scored under different settings ({shown}); pass --allow-config-diff to "
                        "gate anyway")
    items = match_items({baseline.run_id: baseline.samples, candidate.run_id: candidate.samples})
    a, b = items[baseline.run_id], items[candidate.run_id]
    tasks = baseline.manifest.get("tasks", {})
    checks: list[Check] = []
    for scope in _gated_scopes(scopes_of(a), policy):
        lim = policy.limits(scope.name)
        available = scope_metrics([a, b], scope, declared_primary(baseline.manifest, scope))
        metric = lim.metric or (available[0] if available else "")
        if metric not in available:
            raise GateError(f"task {scope.name} has no metric {metric!r} in both runs "
                            f"(available: {', '.join(available) or 'none'})")
        s = paired_stats(a, b, scope, metric, n_boot=n_boot, seed=seed)
        if s.n < lim.min_items:
            checks.append(Check(scope.name, scope.kind, metric, lim, "insufficient",
                                f"{s.n} items < min_items {lim.min_items}", s))
        else:
            checks.append(Check(scope.name, scope.kind, metric, lim, "pass", "", s))
    judged = [c for c in checks if c.status == "pass"]
    for c, p in zip(judged, stats.adjust_pvalues([c.stats.p_value for c in judged], policy.correction)):
        c.p_adjusted = float(p)
        recorded = (tasks.get(c.name) or {}).get("directions")
        drop, lim = _worsening(c.stats, direction(c.metric, recorded)), c.limits
        if drop > lim.max_drop and c.p_adjusted < lim.alpha:
            c.status = "regression"
            c.reason = (f"dropped {drop:.4f} (> max_drop {lim.max_drop}) with p_{policy.correction}="
                        f"{c.p_adjusted:.3g} < alpha {lim.alpha}")
        elif drop > lim.max_drop:
            c.reason = f"dropped {drop:.4f} but not significant (p_{policy.correction}={c.p_adjusted:.3g} >= {lim.alpha})"
        else:
            c.reason = f"change {c.stats.delta:+.4f} within max_drop {lim.max_drop}"
    return GateResult(baseline.run_id, candidate.run_id, policy, checks)


# ---- outputs ------------------------------------------------------------------------------------
def summary_markdown(result: GateResult) -> str:
    icon = {"pass": "✅ pass", "regression": "❌ regression", "insufficient": "⚠️ too few items"}
    lines = [f"## workbench gate: {result.verdict}", "",
             f"Baseline `{result.baseline}` → candidate `{result.candidate}`; p-values McNemar exact / paired "
             f"permutation, {result.policy.correction}-corrected across {len(result.checks)} checks.", "",
             "| task | metric | n | baseline | candidate | Δ | 95% CI | p (adj.) | max drop | α | result |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result.checks:
        s = c.stats
        name = f"[{c.name}]" if c.kind == "group" else c.name
        lines.append(f"| {name} | {c.metric} | {s.n} | {fmt(s.mean_a, '.4f')} | {fmt(s.mean_b, '.4f')} | {fmt(s.delta, '+.4f')} | "
                     f"[{fmt(s.ci95_low, '+.3f')}, {fmt(s.ci95_high, '+.3f')}] | {fmt(c.p_adjusted, '.3g')} | "
                     f"{c.limits.max_drop} | {c.limits.alpha} | {icon[c.status]} |")
    notes = [f"- **{c.name}**: {c.reason}" for c in result.checks if c.status != "pass"]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def junit_xml(result: GateResult) -> ET.ElementTree:
    suite = ET.Element("testsuite", name="workbench-gate", tests=str(len(result.checks)),
                       failures=str(sum(c.status == "regression" for c in result.checks)),
                       errors=str(sum(c.status == "insufficient" for c in result.checks)), skipped="0")
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="baseline", value=result.baseline)
    suite.find("properties").append(ET.Element("property", name="candidate", value=result.candidate))
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname="workbench.analysis.gate", name=f"{c.name}[{c.metric}]")
        s = c.stats
        detail = (f"n={s.n} baseline={fmt(s.mean_a, '.4f')} candidate={fmt(s.mean_b, '.4f')} delta={fmt(s.delta, '+.4f')} "
                  f"ci95=[{fmt(s.ci95_low, '+.4f')}, {fmt(s.ci95_high, '+.4f')}] p={fmt(s.p_value, '.3g')} "
                  f"p_adj={fmt(c.p_adjusted, '.3g')} test={s.test}")
        if c.status == "regression":
            ET.SubElement(case, "failure", message=c.reason, type="regression").text = detail
        elif c.status == "insufficient":
            ET.SubElement(case, "error", message=c.reason, type="insufficient-items").text = detail
        else:
            ET.SubElement(case, "system-out").text = f"{c.reason}; {detail}"
    root = ET.Element("testsuites", name="workbench-gate")
    root.append(suite)
    return ET.ElementTree(root)


def error_junit(message: str) -> ET.ElementTree:
    """A one-case JUnit report for a gate that could not run (unusable input)."""
    root = ET.Element("testsuites", name="workbench-gate")
    suite = ET.SubElement(root, "testsuite", name="workbench-gate", tests="1", failures="0", errors="1", skipped="0")
    ET.SubElement(ET.SubElement(suite, "testcase", classname="workbench.analysis.gate", name="gate"), "error",
                  message=message, type="unusable-input").text = message
    return ET.ElementTree(root)


def write_junit(tree: ET.ElementTree, path: str | Path) -> None:
    ET.indent(tree)
    try:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise GateError(f"cannot write the JUnit report {path}: {exc.strerror or exc}") from None


def append_summary(text: str, path: str | Path) -> None:
    """Append, as CI job-summary files ($GITHUB_STEP_SUMMARY) expect."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        raise GateError(f"cannot write the summary {path}: {exc.strerror or exc}") from None
