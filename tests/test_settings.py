"""Every WORKBENCH_* variable is read in settings; scoring settings are validated and resolved there."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench import settings


def test_no_module_but_settings_reads_the_environment():
    root = Path(settings.__file__).resolve().parent
    readers = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
               if re.search(r"os\.environ(\.get)?\(\s*[\"']WORKBENCH_|getenv\(\s*[\"']WORKBENCH_", p.read_text())]
    assert readers == ["settings.py"]


def test_scoring_defaults_environment_then_options(monkeypatch):
    for var in ("WORKBENCH_REFUSAL_JUDGE", "WORKBENCH_JUDGE_MODEL", "WORKBENCH_SANDBOX_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    assert settings.Scoring.from_env() == settings.Scoring()
    monkeypatch.setenv("WORKBENCH_SANDBOX_TIMEOUT", "3")
    monkeypatch.setenv("WORKBENCH_REFUSAL_JUDGE", "model")
    s = settings.Scoring.from_env()
    assert s.sandbox_timeout_s == 3.0 and s.refusal_judge == "model" and s.judge_model == "smollm2-135m"
    assert settings.Scoring.from_env(sandbox_timeout_s=7, refusal_judge="keyword").to_dict() == {
        "refusal_judge": "keyword", "judge_model": None, "sandbox_timeout_s": 7.0, "sandbox_memory_mb": 1024}


@pytest.mark.parametrize("values, message", [
    ({"sandbox_timeout_s": 0}, "timeout"), ({"sandbox_timeout_s": "soon"}, "seconds"),
    ({"sandbox_memory_mb": 1}, "memory"), ({"colour": "red"}, "unknown scoring setting"),
])
def test_bad_scoring_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        settings.Scoring.from_dict(values)


def test_the_run_being_scored_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_SANDBOX_TIMEOUT", "3")
    with settings.using_scoring(settings.Scoring(sandbox_timeout_s=9)):
        assert settings.scoring().sandbox_timeout_s == 9
    assert settings.scoring().sandbox_timeout_s == 3


def test_ray_workers_get_this_process_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", "/data/mirror")
    monkeypatch.setenv("PYTHONPATH", "/src")
    monkeypatch.delenv("WORKBENCH_DEVICE", raising=False)
    env = settings.worker_environment(threads=3, gpu=True)
    assert env["WORKBENCH_DATA_DIR"] == "/data/mirror" and env["PYTHONPATH"] == "/src"
    assert env["WORKBENCH_THREADS"] == env["OMP_NUM_THREADS"] == "3" and env["WORKBENCH_DEVICE"] == "cuda"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("WORKBENCH_DEVICE", "cuda:1")
    assert settings.worker_environment(gpu=True)["WORKBENCH_DEVICE"] == "cuda:1"
