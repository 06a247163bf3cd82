"""`workbench interp` and `workbench artifacts` end to end on the tiny model, with a stored eval sample."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.cli import main


@pytest.fixture
def stored_run(tmp_path):
    """A run store with one complete run holding two samples (the columns `workbench eval` writes)."""
    from workbench.store import RunStore

    store = RunStore(tmp_path / "runs")
    run = store.create("run-1", {"model": {"spec": "hf:tiny"}, "tasks": {"toy": {}}})
    samples = pd.DataFrame({"task": ["toy", "toy"], "doc_id": [0, 1],
                            "prompt": ["Which organ pumps blood? The", "The quick brown fox"],
                            "target_text": [" heart", " jumps"], "acc": [0.0, 1.0]})
    store.publish(run, samples, {"tasks": {}})
    return store.root


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:   # argparse refuses a flag value at parse time
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_sample_prompt_flows_into_artifact_link(tiny_model_dir, stored_run, tmp_path, capsys):
    arts = str(tmp_path / "arts")
    rc, out, _ = _run(capsys, "interp", "logit-lens", "--model", f"hf:{tiny_model_dir}", "--run", "run-1",
                      "--sample", "0", "--store", str(stored_run), "--artifacts", arts, "-k", "3", "--quiet")
    assert rc == 0
    aid = out.strip()
    rc, out, _ = _run(capsys, "artifacts", "show", aid, "--artifacts", arts, "--json")
    manifest = json.loads(out)
    assert manifest["prompts"] == ["Which organ pumps blood? The"]
    assert manifest["source"] == {"run_id": "run-1", "task": "toy", "doc_id": "0", "target_text": " heart",
                                  "store": str(stored_run), "correct": False, "predicted_text": None}
    rc, out, _ = _run(capsys, "artifacts", "list", "--artifacts", arts)
    assert aid in out and "run-1/toy/0" in out
    rc, out, _ = _run(capsys, "artifacts", "show", aid, "--artifacts", arts)
    assert rc == 0 and "top-1 next token" in out


@pytest.mark.parametrize("argv,message", [
    (["artifacts", "show", "../etc"], "invalid artifact id"),
    (["interp", "attention", "--model", "{tiny}"], "a prompt is needed"),
    (["interp", "attribute", "--model", "{tiny}", "--prompt", "The quick", "--target", " xylophone quartet"],
     "not a single token"),
    (["interp", "logit-lens", "--model", "{tiny}", "--run", "run-1", "--sample", "9", "--store", "{store}"],
     "no sample with doc_id"),
    (["interp", "attention", "--model", "llamacpp:smollm2-135m", "--prompt", "x"], "torch weights"),
    (["interp", "probe", "--model", "{tiny}", "--dataset", "nope"], "unknown probe dataset"),
    # non-convergence is an error, so --quiet cannot hide it
    (["interp", "attribute", "--model", "{tiny}", "--prompt", "The quick brown fox", "--target", " the", "--quiet",
      "--n-steps", "2", "--max-steps", "4", "--tolerance", "1e-9"], "did not converge: completeness error"),
    (["interp", "attribute", "--model", "{tiny}", "--prompt", "The quick", "--target", " the", "--max-steps", "8"],
     "--n-steps <= --max-steps"),
    (["interp", "attention", "--model", "{tiny}", "--prompt", "The quick", "--seq-lens", "1,8"], "each must be at least 2"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tiny_model_dir, stored_run, tmp_path, capsys):
    argv = [a.format(tiny=f"hf:{tiny_model_dir}", store=stored_run) for a in argv]
    rc, _, err = _run(capsys, *argv, "--artifacts", str(tmp_path / "a"))
    assert rc == 2
    lines = [l for l in err.splitlines() if l.startswith("workbench: error:")]
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.slow
def test_cli_subprocess_attention(run_cli, tiny_model_dir, tmp_path):
    r = run_cli("interp", "attention", "--model", f"hf:{tiny_model_dir}", "--prompt", "The quick brown fox",
                "--seq-len", "8", env={"WORKBENCH_ARTIFACTS": str(tmp_path / "arts")})
    assert r.returncode == 0, r.stderr
    aid = r.stdout.strip().splitlines()[-1]
    assert (tmp_path / "arts" / aid / "manifest.json").is_file()
