"""Functional-correctness scoring of generated code: HumanEval programs, sandboxed runs, pass@k.

A sample passes if, in the sandbox (`workbench.sandbox.runner`), `prompt + completion` runs and then
`test + check(entry_point)` returns: ending the process early (`sys.exit(0)`, `os._exit(0)`, ...)
is a failure, `early_exit`. This module is the only place task code reaches code execution. pass@k is
the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) over n samples with c correct.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench import settings
from workbench.sandbox.runner import ExecResult, Program, SandboxConfig, run_programs


def program(prompt: str, completion: str, test: str, entry_point: str) -> Program:
    """The program HumanEval runs for one completion (openai/human-eval's `check_correctness`), with
    the test and the `check` call as the trusted part that must return for a pass."""
    return Program(f"{prompt}{completion}", f"{test}\ncheck({entry_point})\n")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples of which c are correct (numerically stable product form)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass
class SampleScore:
    """One doc's n completions, run: pass@k for each k asked, and why each failing one failed."""

    passed: list[bool]
    reasons: list[str]
    details: list[str]
    layers: tuple[str, ...] = ()

    def pass_at(self, k: int) -> float:
        return pass_at_k(len(self.passed), sum(self.passed), k)


def sandbox_config() -> SandboxConfig:
    """Limits for HumanEval programs: the run's scoring settings (`--sandbox-timeout`, `--sandbox-memory`)."""
    s = settings.scoring()
    return SandboxConfig(timeout_s=s.sandbox_timeout_s, memory_mb=s.sandbox_memory_mb)


def score_programs(programs: list[Program], cfg: SandboxConfig | None = None, workers: int | None = None) -> SampleScore:
    workers = workers if workers is not None else settings.sandbox_workers()
    results: list[ExecResult] = run_programs(programs, cfg or sandbox_config(), workers=workers)
    return SampleScore([r.passed for r in results], [r.reason for r in results], [r.detail for r in results],
                       results[0].layers if results else ())
