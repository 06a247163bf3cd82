"""The real CLI in a subprocess: help text, and one clear error line for each kind of bad input."""
import shutil

import pytest

SUBCOMMANDS = [[], ["eval"], ["runs"], ["runs", "list"], ["runs", "show"], ["models"], ["models", "list"],
               ["tasks"], ["tasks", "list"], ["contamination"]]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_subcommand_has_help(run_cli, cmd):
    res = run_cli(*cmd, "--help")
    assert res.returncode == 0 and res.stdout.startswith("usage: workbench")


def _assert_one_clear_error(res, *needles):
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("workbench: error:")]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _no_runs(run_cli, store):
    res = run_cli("runs", "list", "--store", str(store))
    assert res.returncode == 0 and res.stdout.startswith("no runs"), res.stdout


def test_unknown_model_spec(run_cli, tmp_path, fixture_mirror):
    res = run_cli("eval", "--model", "gpt-17", "--tasks", "arc_easy", "--data-dir", str(fixture_mirror), "--store", str(tmp_path / "s"))
    _assert_one_clear_error(res, "unknown model spec 'gpt-17'")
    _no_runs(run_cli, tmp_path / "s")


def test_unknown_task(run_cli, tmp_path, fixture_mirror, tiny_model_dir):
    res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "arc_eazy", "--data-dir", str(fixture_mirror))
    _assert_one_clear_error(res, "unknown task 'arc_eazy'", "arc_easy")


def test_missing_gguf(run_cli, tmp_path, fixture_mirror):
    res = run_cli("eval", "--model", f"gguf:{tmp_path / 'none.gguf'}", "--tasks", "arc_easy", "--data-dir", str(fixture_mirror))
    _assert_one_clear_error(res, "GGUF file not found", "none.gguf")


def test_corrupt_gguf(run_cli, tmp_path, fixture_mirror, smollm2_gguf):
    bad = tmp_path / "half.gguf"
    with open(smollm2_gguf, "rb") as fh:
        bad.write_bytes(fh.read(2_000_000))
    res = run_cli("eval", "--model", f"gguf:{bad}", "--tasks", "arc_easy", "--data-dir", str(fixture_mirror), "--store", str(tmp_path / "s"))
    _assert_one_clear_error(res, "corrupt or truncated GGUF", "half.gguf")
    _no_runs(run_cli, tmp_path / "s")


def test_missing_data_file(run_cli, tmp_path, tiny_model_dir):
    res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy", "--data-dir", str(tmp_path / "empty"))
    _assert_one_clear_error(res, "missing data file", "mmlu/test/anatomy_test.csv")


def test_malformed_row(run_cli, tmp_path, tiny_model_dir, fixture_mirror):
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror)
    with open(mirror / "mmlu/test/anatomy_test.csv", "a") as fh:
        fh.write("A question with a bad answer key,a,b,c,d,Z\n")
    res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy", "--data-dir", str(mirror), "--store", str(tmp_path / "s"))
    _assert_one_clear_error(res, "malformed row", "anatomy_test.csv line 9", "answer must be one of A-D")
    _no_runs(run_cli, tmp_path / "s")


def test_unknown_run_and_bad_run_id(run_cli, tmp_path):
    _assert_one_clear_error(run_cli("runs", "show", "nope", "--store", str(tmp_path)), "no run nope")
    _assert_one_clear_error(run_cli("runs", "show", "../etc", "--store", str(tmp_path)), "invalid run id")
    _assert_one_clear_error(run_cli("eval", "--resume", "nope", "--store", str(tmp_path)), "no interrupted run nope")


def test_eval_prints_run_id_and_table_then_runs_show_it(run_cli, tmp_path, tiny_model_dir, fixture_mirror):
    store = str(tmp_path / "s")
    res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "arc_easy,truthfulqa_mc2", "--data-dir",
                  str(fixture_mirror), "--store", store, "--no-progress")
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.splitlines()[0].removeprefix("run_id: ")
    assert "arc_easy" in res.stdout and "acc_norm" in res.stdout and "95% CI" in res.stdout
    show = run_cli("runs", "show", run_id, "--store", store)
    assert show.returncode == 0 and "truthfulqa_mc2" in show.stdout
    listed = run_cli("runs", "list", "--store", store)
    assert run_id in listed.stdout
