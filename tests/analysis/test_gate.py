"""`workbench gate` on real harness runs (tiny model, real benchmark data): planted regression vs identical rerun."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import derive_run

from workbench import cli
from workbench.analysis.gate import Limits, evaluate_gate, parse_policy
from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore

TASKS = ["mmlu_anatomy", "arc_easy"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_dir, real_data_dir):
    """base and rerun (same tiny model, same request), small (--limit 5) and two edited copies of base."""
    st = RunStore(tmp_path_factory.mktemp("gate-store"))

    def ev(run_id, limit=40):
        req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=TASKS, data_dir=str(real_data_dir), limit=limit)
        return run_eval(req, store=st, run_id=run_id, progress=False)

    ev("base")
    ev("rerun")
    ev("small", limit=5)
    _planted(st, "base", "regressed", {"arc_easy": None, "mmlu_anatomy": None})  # every right answer made wrong
    _planted(st, "base", "slightly-worse", {"arc_easy": 1})
    return st


def _planted(st: RunStore, src: str, dst: str, flips: dict[str, int | None]) -> None:
    """Copy a real run and set `acc` of the first k correct items per task to 0 (all if None)."""
    def flip(df):
        for task, k in flips.items():
            right = df.index[(df.task == task) & (df.acc == 1)]
            assert len(right) >= (k or 8), f"need correct {task} items to flip, have {len(right)}"
            df.loc[right[:k], "acc"] = 0.0
        return df

    derive_run(st, src, dst, flip)


def _gate(st, tmp_path, baseline, candidate, policy: str | None = None):
    junit, summary = tmp_path / "gate.xml", tmp_path / "summary.md"
    args = ["gate", "--baseline", baseline, "--candidate", candidate, "--store", str(st.root),
            "--junit", str(junit), "--summary", str(summary)]
    if policy is not None:
        (tmp_path / "gate.yaml").write_text(policy)
        args += ["--policy", str(tmp_path / "gate.yaml")]
    code = cli.main(args)
    return code, ET.parse(junit).getroot(), summary.read_text()


def _cases(root) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase")}


def test_planted_regression_fails(store, tmp_path, capsys):
    code, root, summary = _gate(store, tmp_path, "base", "regressed")
    assert code == 1
    suite = root.find("testsuite")
    assert int(suite.get("tests")) == 2 and int(suite.get("failures")) == 2
    cases = _cases(root)
    assert set(cases) == {"mmlu[acc]", "arc_easy[acc]"}
    for case in cases.values():
        fail = case.find("failure")
        assert fail is not None and "max_drop" in fail.get("message")
    assert summary.startswith("## workbench gate: REGRESSION") and "❌ regression" in summary
    assert "REGRESSION" in capsys.readouterr().out


def test_identical_rerun_passes(store, tmp_path):
    # a genuine second run of the harness (its own manifest), reproducing the baseline's scores
    base, rerun = store.load("base"), store.load("rerun")
    assert rerun.manifest["run_id"] == "rerun" and base.manifest["run_id"] == "base"
    assert rerun.samples.acc.tolist() == base.samples.acc.tolist()
    code, root, summary = _gate(store, tmp_path, "base", "rerun")
    assert code == 0
    suite = root.find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert all(c.find("failure") is None for c in root.iter("testcase"))
    assert summary.startswith("## workbench gate: PASS")


def test_insignificant_drop_passes_and_per_task_max_drop_applies(store, tmp_path):
    # one flipped item out of 40: a drop of 0.025, never significant (McNemar p = 1)
    code, root, summary = _gate(store, tmp_path, "base", "slightly-worse")
    assert code == 0 and "not significant" in ET.tostring(root, encoding="unicode")
    # allowing a large drop for one task lets it pass while the other still fails
    code, root, _ = _gate(store, tmp_path, "base", "regressed", "tasks:\n  arc_easy: {max_drop: 0.9}\n")
    cases = _cases(root)
    assert code == 1 and cases["arc_easy[acc]"].find("failure") is None and cases["mmlu[acc]"].find("failure") is not None


def test_policy_gates_named_subtasks_and_uses_its_alpha(store, tmp_path):
    result = evaluate_gate(store.load("base"), store.load("regressed"),
                           parse_policy({"alpha": 1e-12, "tasks": {"mmlu_anatomy": {}}}))
    assert [c.name for c in result.checks] == ["mmlu", "arc_easy", "mmlu_anatomy"]
    assert result.exit_code == 0 and all(c.stats.delta < 0 for c in result.checks)  # drops, but alpha is tiny


def test_too_few_items_is_unusable(store, tmp_path):
    code, root, summary = _gate(store, tmp_path, "base", "rerun", "min_items: 41\n")
    assert code == 2
    assert root.find("testsuite").get("errors") == "2" and "too few items" in summary


@pytest.mark.parametrize("policy,message", [
    ("max_drops: 0.1\n", "unknown key(s) max_drops"),
    ("tasks:\n  hellaswag: {}\n", "policy names task(s) not in the runs: hellaswag"),
    ("alpha: 2\n", "0 < alpha < 1"),
    ("correction: magic\n", "unknown correction"),
    ("metric: f1\n", "has no metric 'f1'"),
    ("[unclosed\n", "not valid YAML"),
])
def test_bad_policy_is_unusable_input(store, tmp_path, capsys, policy, message):
    code, root, summary = _gate(store, tmp_path, "base", "rerun", policy)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert root.find("testsuite/testcase/error").get("type") == "unusable-input"
    assert summary.startswith("## workbench gate: UNUSABLE INPUT")


def test_mismatched_runs_are_unusable(store, tmp_path, capsys):
    code, root, _ = _gate(store, tmp_path, "base", "small")
    assert code == 2 and "do not cover the same items" in capsys.readouterr().err
    assert "only in base" in root.find("testsuite/testcase/error").get("message")


def test_policy_defaults_and_overrides():
    p = parse_policy({"max_drop": 0.01, "tasks": {"arc_easy": {"alpha": 0.1}}})
    assert p.limits("arc_easy") == Limits(max_drop=0.01, alpha=0.1, min_items=10)
    assert p.limits("mmlu") == Limits(max_drop=0.01)
    assert parse_policy(None).correction == "holm"


@pytest.mark.slow
def test_cli_gate_subprocess_exit_codes(store, run_cli, tmp_path):
    bad = run_cli("gate", "--baseline", "base", "--candidate", "regressed", "--store", str(store.root),
                  "--junit", str(tmp_path / "j.xml"))
    assert bad.returncode == 1 and ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("failures") == "2"
    ok = run_cli("gate", "--baseline", "base", "--candidate", "rerun", "--store", str(store.root))
    assert ok.returncode == 0 and "PASS" in ok.stdout
    missing = run_cli("gate", "--baseline", "base", "--candidate", "nope", "--store", str(store.root))
    assert missing.returncode == 2 and "no run nope" in missing.stderr
