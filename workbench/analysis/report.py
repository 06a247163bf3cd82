"""Comparison reports: one self-contained HTML file (plotly.js inlined, opens offline) plus Markdown."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.analysis.calibration import METRICS as CALIBRATION_METRICS
from workbench.analysis.calibration import CalibrationRow, calibration_rows
from workbench.analysis.compare import Comparison, PairedRow, headline_scopes, model_label
from workbench.analysis.contamination import ContaminationSplit
from workbench.analysis.figures import forest, paired_rows, reliability
from workbench.errors import WorkbenchError, describe_os_error
from workbench.store.samples import fmt

SECTIONS = ("Runs", "Leaderboard", "Paired deltas per task", "Paired deltas per subject", "Forest plot",
            "Calibration", "Contamination", "Flipped items", "Manifest diff")
_MAX_FLIPS_MD = 40       # per direction and pair in Markdown; the HTML lists all
_PROMPT_TAIL = 400       # characters of prompt shown in Markdown (the question sits at the end)


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path


def _num(v: Any) -> str:
    return fmt(v, ".3f") if isinstance(v, float) or v is None else str(v)


def _p(v: float) -> str:
    return fmt(v, ".2e" if v == v and v is not None and v < 1e-3 else ".3f")


def _signed(v: float) -> str:
    return fmt(v, "+.3f")


def _mark(p: PairedRow, alpha: float) -> str:
    return "*" if p.p_adjusted == p.p_adjusted and p.p_adjusted < alpha else ""


def report_name(comparison: Comparison) -> str:
    ids = [r.run_id for r in comparison.runs]
    name = f"compare_{ids[0]}_vs_{ids[1]}"
    if len(ids) > 2:
        name += f"_and_{len(ids) - 2}_more_{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:8]}"
    return name


# ---- table content shared by both formats --------------------------------------------------------
def _runs_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["run", "role", "model", "backend", "quantization", "items", "created"]
    rows = []
    for i, r in enumerate(c.runs):
        m = r.manifest.get("model", {})
        rows.append([r.run_id, "baseline" if i == 0 else "candidate", m.get("spec", ""), m.get("backend", ""),
                     str(m.get("quantization", "")), str(len(c.items[r.run_id])), str(r.manifest.get("created", ""))])
    return head, rows


def _leaderboard_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    scopes = headline_scopes(c.scopes)
    head = ["model (run)"] + [f"{s.name}{' (group)' if s.kind == 'group' else ''}" for s in scopes]
    rows = []
    for r in c.runs:
        cells = [f"{model_label(r)} ({r.run_id})"]
        for s in scopes:
            e = next((l for l in c.leaderboard if l.run_id == r.run_id and l.scope == s), None)
            cells.append("–" if e is None else
                         f"{e.estimate.value:.3f} [{_num(e.estimate.ci95_low)}, {_num(e.estimate.ci95_high)}] "
                         f"{e.metric}, n={e.estimate.n}")
        rows.append(cells)
    return head, rows


def _paired_table(rows: Sequence[PairedRow], c: Comparison, alpha: float) -> tuple[list[str], list[list[str]]]:
    head = ["candidate", "scope", "metric", "n", "baseline", "candidate mean", "Δ", "95% CI (paired bootstrap)",
            "test", "p", f"p ({c.correction})", "right→wrong", "wrong→right", "MDD (80% power)"]
    out = []
    for p in rows:
        s = p.stats
        scope = p.scope.name + (" (group, clustered by subject)" if p.scope.kind == "group" and s.clustered
                                else " (group)" if p.scope.kind == "group" else "")
        # An aggregate metric (ECE, ...) has no per-item right/wrong counts or closed-form MDD.
        counts = ["–", "–"] if s.test == "permutation-swap" else [str(s.n_a_only), str(s.n_b_only)]
        out.append([p.candidate, scope, _metric_label(p.metric, c, p.scope.name), str(s.n), _num(s.mean_a),
                    _num(s.mean_b), _signed(s.delta) + _mark(p, alpha), f"[{_signed(s.ci95_low)}, {_signed(s.ci95_high)}]",
                    s.test, _p(s.p_value), _p(p.p_adjusted), *counts, _num(s.mdd)])
    return head, out


def _metric_label(metric: str, c: Comparison, task: str | None = None) -> str:
    """The metric with its direction when lower (or zero) is better, e.g. `ece (lower is better)`."""
    way = c.direction(metric, task)
    return metric if way == "higher" else f"{metric} ({'lower' if way == 'lower' else 'closer to 0'} is better)"


def _calibration_table(c: Comparison, rows: Sequence[CalibrationRow]) -> tuple[list[str], list[list[str]]]:
    head = ["model (run)", "scope", "n"] + [_metric_label(m, c) for m in CALIBRATION_METRICS]
    out = []
    for r in rows:
        run = next(x for x in c.runs if x.run_id == r.run_id)
        n = max((e.n for e in r.estimates.values()), default=0)
        cells = [f"{model_label(run)} ({r.run_id})", r.scope.name + (" (group)" if r.scope.kind == "group" else ""), str(n)]
        for m in CALIBRATION_METRICS:
            e = r.estimates.get(m)
            cells.append("–" if e is None or e.n == 0 else f"{e.value:.3f} [{_num(e.ci95_low)}, {_num(e.ci95_high)}]")
        out.append(cells)
    return head, out


def _contamination_table(split: ContaminationSplit | None, c: Comparison, alpha: float) -> tuple[list[str], list[list[str]]]:
    head = ["run", "scope", "metric", "clean n", "clean mean", "contaminated n", "contaminated mean",
            "Δ (contaminated − clean)", "95% CI", "test", "p", f"p ({c.correction})", "untested"]
    rows = []
    for r in split.rows if split else []:
        s = r.stats
        mark = "*" if r.p_adjusted == r.p_adjusted and r.p_adjusted < alpha else ""
        rows.append([r.run_id, r.scope.name + (" (group)" if r.scope.kind == "group" else ""), r.metric, str(s.n_x),
                     _num(s.mean_x), str(s.n_y), _num(s.mean_y), _signed(s.delta) + mark,
                     f"[{_signed(s.ci95_low)}, {_signed(s.ci95_high)}]", s.test, _p(s.p_value), _p(r.p_adjusted),
                     str(r.n_untested)])
    return head, rows


def _contamination_intro(split: ContaminationSplit | None) -> str:
    if split is None:
        return "No contamination result given (`workbench compare ... --contamination ID`)."
    return (f"Result {split.result_id}: {split.ngram}-gram overlap with its corpus, contaminated = {split.rule}. "
            f"{split.n_covered} of {split.n_items} compared items are in the result; {split.n_contaminated} are "
            "contaminated. Each run's primary metric on clean vs contaminated items (independent samples: Fisher's "
            "exact test for binary scores, else a permutation test; bootstrap CI), corrected across each run's scopes. "
            "Untested: items too short for one n-gram or not in the result.")


def _diff_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["field"] + [r.run_id for r in c.runs]
    return head, [[k] + ["–" if v is None else str(v) for v in vals] for k, vals in c.manifest_diff]


def _config_table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["scoring setting"] + [r.run_id for r in c.runs]
    return head, [[k] + ["–" if v is None else str(v) for v in vals] for k, vals in c.config_diff]


def _intro(c: Comparison, alpha: float) -> str:
    return (f"Items matched by (task, doc_id, prompt_hash): {len(c.items[c.baseline.run_id])} per run. "
            "Δ = candidate − baseline. p-values: McNemar exact (binary scores) or paired permutation test; "
            f"corrected with {c.correction} per candidate and metric across the headline rows (groups and ungrouped "
            f"tasks) and, separately, across each group's subjects; * marks corrected p < {alpha}. "
            "Group rows pool their tasks' items with a clustered bootstrap (subjects, then items). "
            "MDD is the smallest |Δ| detectable with 80% power at α = 0.05 given the items and their discordance.")


def _task_rows(c: Comparison) -> list[PairedRow]:
    return [p for p in c.paired if p.scope.kind == "group" or p.scope.subject is None]


def _subject_rows(c: Comparison) -> list[PairedRow]:
    return [p for p in c.paired if p.scope.kind == "task" and p.scope.subject is not None and p.primary]


# ---- Markdown -----------------------------------------------------------------------------------
def _md_cell(v: str) -> str:
    return v.replace("|", "\\|").replace("\n", " ")


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md_cell(str(v)) for v in r) + " |" for r in rows]
    return "\n".join(lines)


_CALIBRATION_NOTE = ("Multiple-choice items scored by the argmax of the choices' log-likelihoods: confidence is the "
                     "softmax probability of the chosen answer; ECE uses 10 equal-mass bins (HELM's ece_10_bin); Brier "
                     "is (confidence − correct)²; selective_acc@0.5 is the accuracy on the most confident half. "
                     "Mean [95% bootstrap CI over items; groups clustered by subject]. Paired differences between runs "
                     "are rows of the paired tables above (paired bootstrap CI, paired swap permutation test).")


def to_markdown(c: Comparison, *, alpha: float = 0.05, calibration: Sequence[CalibrationRow] | None = None,
                contamination: ContaminationSplit | None = None) -> str:
    calibration = calibration_rows(c) if calibration is None else calibration
    out = [f"# Run comparison: {_title(c)}", "", _intro(c, alpha), ""]
    if c.config_diff:
        out += ["**Scored under different settings** (allowed with --allow-config-diff): differences below mix "
                "model and measurement.", "", md_table(*_config_table(c)), ""]
    out += ["## Runs", "", md_table(*_runs_table(c)), ""]
    out += ["## Leaderboard", "", "Mean [95% CI].", "", md_table(*_leaderboard_table(c)), ""]
    out += ["## Paired deltas per task", "", md_table(*_paired_table(_task_rows(c), c, alpha)), ""]
    subj = _subject_rows(c)
    out += ["## Paired deltas per subject", ""]
    out += [md_table(*_paired_table(subj, c, alpha)) if subj else "No grouped tasks.", ""]
    out += ["## Forest plot", "", "See the HTML report.", ""]
    out += ["## Calibration", ""]
    out += [_CALIBRATION_NOTE + " Reliability diagrams: see the HTML report.", "",
            md_table(*_calibration_table(c, calibration))] if calibration else \
        ["No multiple-choice task with calibration columns in these runs."]
    out += ["", "## Contamination", "", _contamination_intro(contamination), ""]
    if contamination is not None:
        out += [md_table(*_contamination_table(contamination, c, alpha)), ""]
    out += ["## Flipped items", ""]
    if c.flips.empty:
        out += ["No item changed its score.", ""]
    for (cand, direction), part in c.flips.groupby(["candidate", "direction"], sort=False):
        out += [f"### {direction}: {len(part)} items ({cand})", ""]
        for _, f in part.head(_MAX_FLIPS_MD).iterrows():
            tail = f.prompt[-_PROMPT_TAIL:]
            out += [f"- **{f.task}#{f.doc_id}** target `{f.target.strip()}` · baseline `{f.answer_baseline.strip()}` · "
                    f"candidate `{f.answer_candidate.strip()}`", "",
                    "  ```text", *("  " + line for line in ((" …" if len(f.prompt) > len(tail) else "") + tail).splitlines()),
                    "  ```", ""]
        if len(part) > _MAX_FLIPS_MD:
            out += [f"- … {len(part) - _MAX_FLIPS_MD} more in the HTML report", ""]
    out += ["## Manifest diff", ""]
    out += [md_table(*_diff_table(c)) if c.manifest_diff else "The manifests agree on every recorded field.", ""]
    return "\n".join(out)


# ---- HTML ---------------------------------------------------------------------------------------
def _title(c: Comparison) -> str:
    return f"{model_label(c.baseline)} vs " + ", ".join(model_label(r) for r in c.runs[1:])


def _leaderboard_figure(c: Comparison):
    import plotly.graph_objects as go

    fig = go.Figure()
    scopes = headline_scopes(c.scopes)
    for r in c.runs:
        ls = [next((l for l in c.leaderboard if l.run_id == r.run_id and l.scope == s), None) for s in scopes]
        ls = [l for l in ls if l is not None]
        fig.add_bar(name=f"{model_label(r)} · {r.run_id}", x=[l.scope.name for l in ls], y=[l.estimate.value for l in ls],
                    error_y=dict(type="data", symmetric=False,
                                 array=[l.estimate.ci95_high - l.estimate.value for l in ls],
                                 arrayminus=[l.estimate.value - l.estimate.ci95_low for l in ls]))
    fig.update_layout(barmode="group", yaxis_title="score (95% CI)", height=420, margin=dict(t=30),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def _forest_figure(c: Comparison, alpha: float):
    """The dashboard's forest plot: headline rows, each candidate in its own colour and offset."""
    return forest([r for r in paired_rows(c, alpha) if not r["subject"]])


def to_html(c: Comparison, *, alpha: float = 0.05, calibration: Sequence[CalibrationRow] | None = None,
            contamination: ContaminationSplit | None = None) -> str:
    """The report as one self-contained page (Jinja2 template, autoescaped; plotly.js inlined once)."""
    import jinja2

    calibration = calibration_rows(c) if calibration is None else calibration

    env = jinja2.Environment(loader=jinja2.PackageLoader("workbench.analysis", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    config = {"displaylogo": False}
    flips = [{"candidate": cand, "direction": direction, "rows": part.to_dict("records")}
             for (cand, direction), part in c.flips.groupby(["candidate", "direction"], sort=False)]
    return env.get_template("compare.html.j2").render(
        title=_title(c), intro=_intro(c, alpha), config_diff=_config_table(c), runs=_runs_table(c),
        leaderboard=_leaderboard_table(c),
        leaderboard_figure=_leaderboard_figure(c).to_html(full_html=False, include_plotlyjs=True, config=config),
        paired_tasks=_paired_table(_task_rows(c), c, alpha), paired_subjects=_paired_table(_subject_rows(c), c, alpha),
        forest_figure=_forest_figure(c, alpha).to_html(full_html=False, include_plotlyjs=False, config=config),
        calibration_note=_CALIBRATION_NOTE, calibration=_calibration_table(c, calibration),
        reliability_figure=reliability(c, calibration).to_html(full_html=False, include_plotlyjs=False,
                                                              config=config) if calibration else "",
        contamination_intro=_contamination_intro(contamination),
        contamination=_contamination_table(contamination, c, alpha),
        flips=flips, manifest_diff=_diff_table(c))


def report_dir(out_dir: str | Path) -> Path:
    """The report directory, created if needed; WorkbenchError now (before any comparison is computed) if
    it cannot be written."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out} is a file; give a directory for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise WorkbenchError(f"cannot write the report into {out}: not writable")
    return out


def write_report(c: Comparison, out_dir: str | Path, *, alpha: float = 0.05,
                 calibration: Sequence[CalibrationRow] | None = None,
                 contamination: ContaminationSplit | None = None) -> ReportPaths:
    """Write <name>.html and <name>.md into out_dir (created if needed): both whole, or neither."""
    out = report_dir(out_dir)
    calibration = calibration_rows(c) if calibration is None else calibration
    name = report_name(c)
    paths = ReportPaths(out / f"{name}.html", out / f"{name}.md")
    texts = {paths.html: to_html(c, alpha=alpha, calibration=calibration, contamination=contamination),
             paths.markdown: to_markdown(c, alpha=alpha, calibration=calibration, contamination=contamination)}
    tmps = {path: path.with_name(f".{path.name}.tmp") for path in texts}
    try:
        for path, text in texts.items():
            tmps[path].write_text(text, encoding="utf-8")
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    except OSError as exc:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise WorkbenchError(describe_os_error(exc, f"the report into {out}")) from None
    return paths
