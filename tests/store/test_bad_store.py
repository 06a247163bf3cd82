"""A damaged store, an interrupted run, a full disk: each is one `workbench: error:` line naming the file (or
a warning naming a skipped entry for listings), exit 2, and nothing complete-looking left behind; a run
stopped by a full disk or ctrl-C resumes to exactly the results of an uninterrupted run."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore

SETTINGS = ["--tasks", "arc_easy", "--limit", "6", "--chunk-size", "1"]  # every fixture ARC doc, one per chunk


@pytest.fixture(scope="module")
def clean(tiny_model_dir, fixture_mirror, tmp_path_factory):
    """An uninterrupted run (and a second one) of the settings the interrupted runs below use."""
    store = RunStore(tmp_path_factory.mktemp("clean") / "runs")
    req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=["arc_easy"], limit=6, chunk_size=1,
                      data_dir=str(fixture_mirror))
    run_eval(req, store=store, run_id="clean", progress=False)
    run_eval(req, store=store, run_id="other", progress=False)
    return store


def _same_results(store: RunStore, run_id: str, clean: RunStore) -> None:
    pd.testing.assert_frame_equal(store.load(run_id).samples, clean.load("clean").samples)
    assert store.load(run_id).metrics == clean.load("clean").metrics


def _edit_json(rel: str, edit: Callable[[object], object]) -> Callable[[Path], None]:
    def apply(run_dir: Path) -> None:
        path = run_dir / rel
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return apply


def _set(key: str, value: object) -> Callable[[dict], dict]:
    return lambda m: {**m, key: value}


def _directory(name: str) -> Callable[[Path], None]:
    def apply(run_dir: Path) -> None:
        (run_dir / name).unlink()
        (run_dir / name).mkdir()

    return apply


def _strip_digests(then: Callable[[Path], None]) -> Callable[[Path], None]:
    """A run written before digests were recorded (so the damage is not caught by a sha256 check)."""
    def apply(run_dir: Path) -> None:
        _edit_json("manifest.json", lambda m: {k: v for k, v in m.items() if k != "files"})(run_dir)
        then(run_dir)

    return apply


# ---- damaged complete runs ---------------------------------------------------------------------------
DAMAGED = [
    ("manifest-corrupt", lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json is corrupt"),
    ("manifest-empty", lambda d: (d / "manifest.json").write_text(""), "manifest.json is corrupt"),
    ("manifest-binary", lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe\x00"), "cannot read"),
    ("manifest-list", lambda d: (d / "manifest.json").write_text("[1, 2]"), "is not a run manifest"),
    ("manifest-model-string", _edit_json("manifest.json", _set("model", "x")), "is not a run manifest"),
    ("manifest-task-entry-list", _edit_json("manifest.json", _set("tasks", {"arc_easy": []})), "is not a run manifest"),
    ("manifest-created-number", _edit_json("manifest.json", _set("created", 5)), "is not a run manifest"),
    ("manifest-n-samples-dict", _edit_json("manifest.json", _set("n_samples", {})), "is not a run manifest"),
    ("manifest-files-list", _edit_json("manifest.json", _set("files", ["x"])), "is not a run manifest"),
    ("manifest-is-directory", _directory("manifest.json"), "cannot read"),
    ("metrics-missing", lambda d: (d / "metrics.json").unlink(), "metrics.json is missing"),
    ("metrics-edited", lambda d: (d / "metrics.json").write_text('{"tasks": []}'), "metrics.json does not match"),
    ("metrics-legacy-wrong-shape", _strip_digests(_edit_json("metrics.json", lambda _: {"tasks": {"arc_easy": {"acc": 0.5}}})),
     "is not a metrics file"),
    ("metrics-legacy-list-entry", _strip_digests(_edit_json("metrics.json", lambda _: {"tasks": {"arc_easy": [1]}})),
     "is not a metrics file"),
    ("metrics-legacy-corrupt", _strip_digests(lambda d: (d / "metrics.json").write_text("{")), "metrics.json is corrupt"),
]


@pytest.fixture
def store(tmp_path, clean) -> RunStore:
    shutil.copytree(clean.root, tmp_path / "runs")
    return RunStore(tmp_path / "runs")


@pytest.mark.parametrize("damage, needle", [c[1:] for c in DAMAGED], ids=[c[0] for c in DAMAGED])
def test_a_damaged_run_is_named_by_show_compare_gate_and_skipped_by_list(wb, store, damage, needle):
    damage(store.root / "clean")
    for argv in (["runs", "show", "clean"], ["compare", "clean", "other", "--out", store.root.parent / "rep"],
                 ["gate", "--baseline", "clean", "--candidate", "other"]):
        wb(*argv, "--store", store.root).error_line("clean", needle)
    listed = wb("runs", "list", "--store", store.root)
    assert listed.rc == 0 and "other" in listed.out and "clean" not in listed.out
    assert f"workbench: warning: skipped {store.root / 'clean'}" in listed.err and needle in listed.err
    assert wb("runs", "verify", "--store", store.root).rc == 1
    assert not (store.root.parent / "rep").exists() or not any((store.root.parent / "rep").iterdir())


SAMPLES = [
    ("samples-edited", lambda d: (d / "samples.parquet").write_bytes(b"PAR1 edited"), "samples.parquet does not match"),
    ("samples-missing", lambda d: (d / "samples.parquet").unlink(), "samples.parquet is missing"),
    ("samples-directory", _directory("samples.parquet"), "samples.parquet is missing"),
    ("samples-legacy-corrupt", _strip_digests(lambda d: (d / "samples.parquet").write_bytes(b"PAR1 junk")),
     "samples.parquet is unreadable"),
    ("samples-legacy-truncated", _strip_digests(lambda d: (d / "samples.parquet").write_bytes(
        (d / "samples.parquet").read_bytes()[:-100])), "samples.parquet is unreadable"),
]


@pytest.mark.parametrize("damage, needle", [c[1:] for c in SAMPLES], ids=[c[0] for c in SAMPLES])
def test_damaged_samples_are_named_where_they_are_read(wb, store, tiny_model_dir, damage, needle):
    damage(store.root / "clean")
    for argv in (["compare", "clean", "other", "--out", store.root.parent / "rep"],
                 ["gate", "--baseline", "other", "--candidate", "clean"],
                 ["interp", "logit-lens", "--model", f"hf:{tiny_model_dir}", "--run", "clean", "--sample", "0"]):
        wb(*argv, "--store", store.root).error_line("run clean", needle)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 directory")
def test_an_unreadable_run_is_skipped_by_list_and_named_by_show(wb, store):
    (store.root / "clean").chmod(0)
    try:
        listed = wb("runs", "list", "--store", store.root)
        assert listed.rc == 0 and "other" in listed.out and "skipped" in listed.err and "clean" in listed.err
        wb("runs", "show", "clean", "--store", store.root).error_line("clean")
    finally:
        (store.root / "clean").chmod(0o755)


def test_stray_entries_are_skipped_with_a_warning(wb, store):
    (store.root / "notes.txt").write_text("hello")
    (store.root / "not a run!").mkdir()
    listed = wb("runs", "list", "--store", store.root, "--json")
    assert listed.rc == 0
    report = json.loads(listed.out)
    assert [r["run_id"] for r in report["runs"]] == ["clean", "other"]
    assert {Path(u["path"]).name for u in report["unreadable"]} == {"notes.txt", "not a run!"}
    assert listed.err.count("workbench: warning: skipped") == 2


# ---- interrupted runs that cannot be resumed as they are -----------------------------------------------
def _partial(store: RunStore, clean: RunStore, run_id: str = "p1") -> Path:
    """An interrupted run of the clean run's settings, as the harness leaves it before its first chunk."""
    manifest = {k: v for k, v in clean.load("clean").manifest.items()
                if k not in ("run_id", "status", "files", "finished", "n_samples", "timings")}
    return store.create(run_id, manifest).path


def _request(key: str, value: object) -> Callable[[Path], None]:
    return _edit_json("manifest.json", lambda m: {**m, "request": {**m["request"], key: value}})


def _task(key: str, value: object) -> Callable[[Path], None]:
    return _edit_json("manifest.json", lambda m: {**m, "tasks": {"arc_easy": {**m["tasks"]["arc_easy"], key: value}}})


def _journal(text: str) -> Callable[[Path], None]:
    return lambda d: (d / "journal.jsonl").write_text(text)


RESUME = [
    ("manifest-corrupt", lambda d: (d / "manifest.json").write_text("{bad"), "manifest.json is corrupt"),
    ("manifest-empty", lambda d: (d / "manifest.json").write_text(""), "manifest.json is corrupt"),
    ("manifest-list", lambda d: (d / "manifest.json").write_text("[]"), "is not a run manifest"),
    ("manifest-no-request", _edit_json("manifest.json", lambda m: {k: v for k, v in m.items() if k != "request"}),
     "is not a run manifest"),
    ("manifest-is-directory", _directory("manifest.json"), "cannot read"),
    ("request-unknown-field", _request("bogus", 1), "unknown field(s) bogus"),
    ("request-no-model", _edit_json("manifest.json", lambda m: {**m, "request": {"tasks": ["arc_easy"]}}),
     "names no model"),
    ("request-limit-negative", _request("limit", -3), "--limit must be an integer >= 1, got -3"),
    ("request-limit-string", _request("limit", "6"), "--limit must be an integer >= 1, got '6'"),
    ("request-seed-negative", _request("seed", -1), "--seed must be an integer in [0, 4294967295]"),
    ("request-chunk-zero", _request("chunk_size", 0), "--chunk-size must be an integer >= 1"),
    ("request-tasks-string", _request("tasks", "arc_easy"), "--tasks must be a list of task names"),
    ("request-model-number", _request("model", 7), "--model must be a model spec"),
    ("request-dtype-unknown", _request("dtype", "int4"), "--dtype must be"),
    ("request-task-unknown", _request("tasks", ["arc_eazy"]), "unknown task 'arc_eazy'"),
    ("plan-no-doc-ids", _task("doc_ids", None), "task 'arc_easy' has no valid plan"),
    ("plan-chunks-inconsistent", _task("n_chunks", 2), "task 'arc_easy' has no valid plan"),
    ("plan-doc-ids-strings", _task("doc_ids", ["0", "1", "2", "3", "4", "5"]), "task 'arc_easy' has no valid plan"),
    ("plan-doc-out-of-range", _task("doc_ids", [0, 1, 2, 3, 4, 999]), "names docs of arc_easy that do not exist"),
    ("plan-data-changed", _task("data", []), "data or prompt changed"),
    ("plan-extra-task", _edit_json("manifest.json", lambda m: {**m, "tasks": {**m["tasks"], "x": m["tasks"]["arc_easy"]}}),
     "tasks do not match its request"),
    ("model-missing", _edit_json("manifest.json", lambda m: {k: v for k, v in m.items() if k != "model"}),
     "no model sha256"),
    ("model-weights-changed", _edit_json("manifest.json", lambda m: {**m, "model": {**m["model"], "sha256": "0" * 64}}),
     "the model's weights changed"),
    ("scoring-list", _edit_json("manifest.json", _set("scoring", [1])), "scoring settings must be a mapping"),
    ("scoring-unknown-key", _edit_json("manifest.json", _set("scoring", {"nope": 1})), "unknown scoring setting(s): nope"),
    ("scoring-unknown-judge", _edit_json("manifest.json", _set("scoring", {"refusal_judge": "zzz"})),
     "unknown refusal judge 'zzz'"),
    ("journal-rows-string", _journal('{"task": "arc_easy", "chunk": 0, "rows": "nope"}\n'), "line 1 is not a journal record"),
    ("journal-line-list", _journal("[1, 2, 3]\n"), "line 1 is not a journal record"),
    ("journal-chunk-string", _journal('{"task": "arc_easy", "chunk": "0", "rows": []}\n'), "not a journal record"),
    ("journal-row-number", _journal('{"task": "arc_easy", "chunk": 0, "rows": [5]}\n'), "not a journal record"),
    ("journal-chunk-other-doc", _journal('{"task": "arc_easy", "chunk": 0, "rows": [{"doc_id": 3}]}\n'),
     "chunk 0 of arc_easy with other docs than its plan"),
    ("journal-chunk-no-rows", _journal('{"task": "arc_easy", "chunk": 1, "rows": []}\n'),
     "chunk 1 of arc_easy with other docs than its plan"),
    ("journal-chunk-past-the-plan", _journal('{"task": "arc_easy", "chunk": 6, "rows": [{"doc_id": 6}]}\n'),
     "chunk 6 of arc_easy with other docs"),
    ("journal-task-not-planned", _journal('{"task": "mmlu_anatomy", "chunk": 0, "rows": [{"doc_id": 0}]}\n'),
     "chunk 0 of mmlu_anatomy with other docs"),
]


@pytest.mark.parametrize("damage, needle", [c[1:] for c in RESUME], ids=[c[0] for c in RESUME])
def test_a_damaged_interrupted_run_is_refused_by_resume(wb, store, clean, damage, needle):
    damage(_partial(store, clean))
    wb("eval", "--resume", "p1", "--store", store.root, "--no-progress").error_line("p1", needle)
    assert (store.root / ".partial" / "p1").is_dir() and not (store.root / "p1").exists()  # kept, not published
    assert [r.run_id for r in store.list()] == ["clean", "other"]


def test_a_torn_or_garbled_journal_tail_is_recomputed(wb, store, clean):
    """Correct success: what a kill mid-write leaves (a torn last line) is dropped and redone."""
    path = _partial(store, clean)
    (path / "journal.jsonl").write_text('{"task": "arc_easy", "chunk": 0, "rows": [{"doc')
    res = wb("eval", "--resume", "p1", "--store", store.root, "--no-progress")
    assert res.rc == 0, res.err
    _same_results(store, "p1", clean)


def test_a_partial_with_an_unreadable_manifest_is_listed_as_skipped(wb, store, clean):
    (_partial(store, clean) / "manifest.json").write_text("{bad")
    listed = wb("runs", "list", "--store", store.root)
    assert listed.rc == 0 and "clean" in listed.out and "p1" in listed.err and "corrupt" in listed.err


# ---- a full disk -------------------------------------------------------------------------------------
def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("size", ["8k", "16k"])
def test_a_full_disk_is_one_line_and_the_run_resumes_to_the_same_results(wb, tmp_path, clean, tiny_model_dir,
                                                                          fixture_mirror, size):
    """A store on a small tmpfs (8k fills during the journal, 16k while writing the results)."""
    mnt = tmp_path / "mnt"
    if not _tmpfs(mnt, size):
        pytest.skip("mounting a tmpfs needs root; test_a_file_size_limit_* covers the same path without it")
    try:
        res = wb("eval", "--model", f"hf:{tiny_model_dir}", *SETTINGS, "--data-dir", fixture_mirror,
                 "--store", mnt / "runs", "--run-id", "full", "--no-progress")
        res.error_line("no space left on the device", "full", "--resume full")
        store = RunStore(mnt / "runs")
        assert store.list() == [] and [p.run_id for p in store.partial()] == ["full"]
        subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], check=True)  # free space
        resumed = wb("eval", "--resume", "full", "--store", mnt / "runs", "--no-progress")
        assert resumed.rc == 0, resumed.err
        _same_results(store, "full", clean)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _limited(max_bytes: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return preexec


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_and_the_run_resumes_to_the_same_results(wb, tmp_path, clean, tiny_model_dir,
                                                                                 fixture_mirror):
    """RLIMIT_FSIZE (no root needed): the samples file outgrows the limit while the run is published."""
    runs = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "workbench.cli", "eval", "--model", f"hf:{tiny_model_dir}", *SETTINGS,
                          "--data-dir", str(fixture_mirror), "--store", str(runs), "--run-id", "big", "--no-progress"],
                         capture_output=True, text=True, timeout=600, preexec_fn=_limited(8000))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("workbench: error:")]
    assert len(errors) == 1 and "file too large" in errors[0] and "--resume big" in errors[0], res.stderr
    store = RunStore(runs)
    assert store.list() == [] and [p.run_id for p in store.partial()] == ["big"]
    resumed = wb("eval", "--resume", "big", "--store", runs, "--no-progress")
    assert resumed.rc == 0, resumed.err
    _same_results(store, "big", clean)


@pytest.mark.slow
def test_ctrl_c_mid_run_is_one_line_and_the_run_resumes_to_the_same_results(wb, tmp_path, clean, tiny_model_dir,
                                                                           fixture_mirror):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "eval", "--model", f"hf:{tiny_model_dir}",
                             *SETTINGS, "--data-dir", str(fixture_mirror), "--store", str(runs), "--run-id", "cc",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = runs / ".partial" / "cc" / "journal.jsonl"
    deadline = time.time() + 300
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= 2) and proc.poll() is None:
        assert time.time() < deadline, "no progress in the journal"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "workbench: interrupted; run cc is kept and can be continued with `workbench eval --resume cc`" in err
    store = RunStore(runs)
    assert store.list() == [] and [p.run_id for p in store.partial()] == ["cc"]
    resumed = wb("eval", "--resume", "cc", "--store", runs, "--no-progress")
    assert resumed.rc == 0, resumed.err
    _same_results(store, "cc", clean)


# ---- damaged artifacts ---------------------------------------------------------------------------------
LEGACY_ARTIFACTS = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-store" / "artifacts"


def _manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    return _edit_json("manifest.json", edit)


def _data(**changes: object) -> Callable[[Path], None]:
    return _manifest(lambda m: {**m, "data": {**m["data"], **changes}})


ARTIFACTS = [
    ("logit_lens-legacy", "manifest-corrupt", lambda d: (d / "manifest.json").write_text("{x"), "is corrupt"),
    ("logit_lens-legacy", "manifest-empty", lambda d: (d / "manifest.json").write_text(""), "is corrupt"),
    ("logit_lens-legacy", "manifest-list", lambda d: (d / "manifest.json").write_text("[1]"), "no kind"),
    ("logit_lens-legacy", "kind-missing", _manifest(lambda m: {k: v for k, v in m.items() if k != "kind"}), "no kind"),
    ("logit_lens-legacy", "kind-unknown", _manifest(_set("kind", "nope")), "unknown artifact kind 'nope'"),
    ("logit_lens-legacy", "prompts-number", _manifest(_set("prompts", 5)), "wrong type of prompts"),
    ("logit_lens-legacy", "prompts-of-numbers", _manifest(_set("prompts", [1, 2])), "wrong type of prompts"),
    ("logit_lens-legacy", "params-string", _manifest(_set("params", "x")), "wrong type of params"),
    ("logit_lens-legacy", "files-dict", _manifest(_set("files", {})), "wrong type of files"),
    ("logit_lens-legacy", "model-string", _manifest(_set("model", "hf:x")), "wrong type of model"),
    ("logit_lens-legacy", "id-of-another", _manifest(_set("id", "other")), "names another id ('other')"),
    ("logit_lens-legacy", "data-positions-number", _data(positions=5), "wrong type of positions"),
    ("logit_lens-legacy", "data-positions-strings", _data(positions=["5"]), "wrong type of positions"),
    ("logit_lens-legacy", "data-field-missing", _manifest(lambda m: {**m, "data": {}}), "does not fit its kind"),
    ("logit_lens-legacy", "table-corrupt", lambda d: (d / "top.parquet").write_bytes(b"PAR1 junk"), "cannot read its files"),
    ("logit_lens-legacy", "table-missing", lambda d: (d / "top.parquet").unlink(), "cannot read its files"),
    ("attention-legacy", "arrays-corrupt", lambda d: (d / "arrays.safetensors").write_bytes(b"junk"), "cannot read its files"),
    ("attention-legacy", "arrays-truncated", lambda d: (d / "arrays.safetensors").write_bytes(
        (d / "arrays.safetensors").read_bytes()[:200]), "cannot read its files"),
    ("attention-legacy", "data-layers-string", _data(layers="0,1"), "wrong type of layers"),
    ("attention-legacy", "data-heads-not-numbers", _data(induction_heads=[["a", "b"]]), "wrong type of induction_heads"),
]


@pytest.mark.parametrize("aid, damage, needle", [(c[0], *c[2:]) for c in ARTIFACTS], ids=[c[1] for c in ARTIFACTS])
def test_a_damaged_artifact_is_named_by_show_and_skipped_or_flagged_by_list(wb, tmp_path, aid, damage, needle):
    root = tmp_path / "arts"
    shutil.copytree(LEGACY_ARTIFACTS, root)
    damage(root / aid)
    wb("artifacts", "show", aid, "--artifacts", root).error_line(aid, needle)
    listed = wb("artifacts", "list", "--artifacts", root)
    other = ({"logit_lens-legacy", "attention-legacy"} - {aid}).pop()
    assert listed.rc == 0 and other in listed.out, listed.err
    assert (aid in listed.out) != (f"workbench: warning: skipped {root / aid}" in listed.err)  # listed, or named
