"""HumanEval metric and filter for benchmarks/tasks/humaneval*.yaml (loaded via `!function`).

The prompt, stop sequences and `build_predictions` filter are lm-eval's built-in humaneval ones;
only the metric is replaced (lm-eval's loads the hub's `code_eval` at import and fails offline).
Completions are executed only through `workbench.scoring.codeeval` -> `workbench.sandbox.runner`.
"""
from __future__ import annotations

from typing import Any

from workbench.scoring.codeeval import program, score_programs

KS = (1, 5, 10, 20, 50, 100)


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval's filter, verbatim: prompt + each completion."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs)]


def process_results(doc: dict, results: list[Any]) -> dict[str, Any]:
    """pass@k (unbiased) for each k <= n samples, and why each sample failed (or "passed")."""
    candidates = results[0] if results and isinstance(results[0], list) else list(results)
    progs = [program("", c, doc["test"], doc["entry_point"]) for c in candidates]
    score = score_programs(progs)
    out: dict[str, Any] = {f"pass@{k}": score.pass_at(k) for k in KS if k <= len(progs)}
    out["exec_reason"] = score.reasons[0]
    out["exec_reasons"] = score.reasons
    out["exec_details"] = score.details
    out["exec_layers"] = ",".join(score.layers)  # the sandbox layers that applied (workbench.sandbox.runner)
    return out
