"""What is stored is what was written: digests, damaged entries, and stores written by older versions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import StoreError
from workbench.store import RunStore
from workbench.store.artifacts import ArtifactError, ArtifactStore

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-store"
MANIFEST = {"created": "2026-01-01T00:00:00", "request": {"model": "hf:x"}, "model": {"spec": "hf:x"},
            "tasks": {"t": {}}}


def _run(store: RunStore, rid: str = "r1"):
    frame = pd.DataFrame([{"task": "t", "doc_id": i, "prompt_hash": str(i), "acc": float(i % 2)} for i in range(4)])
    return store.publish(store.create(rid, MANIFEST), frame, {"tasks": {"t": {}}, "groups": {}})


def test_publish_records_digests_and_an_edited_sample_file_is_refused(tmp_path):
    store = RunStore(tmp_path)
    run = _run(store)
    assert set(run.manifest["files"]) == {"samples.parquet", "metrics.json"} and run.verify() == []
    df = run.samples
    df.loc[0, "acc"] = 1.0  # someone "fixes" a score by hand
    df.to_parquet(run.path / "samples.parquet", index=False)
    with pytest.raises(StoreError, match="samples.parquet does not match its recorded sha256"):
        _ = store.load("r1").samples
    assert store.load("r1").verify() == ["run r1: samples.parquet does not match its recorded sha256 (edited or damaged)"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "manifest.json").write_text("{not json"), "manifest.json is corrupt"),
    (lambda p: (p / "manifest.json").write_text(""), "manifest.json is corrupt"),
    (lambda p: (p / "manifest.json").write_text("[1, 2]"), "is not a run manifest"),
    (lambda p: (p / "metrics.json").unlink(), "metrics.json is missing"),
    (lambda p: (p / "metrics.json").write_text('{"tasks": []}'), "does not match its recorded sha256"),
])
def test_a_damaged_run_is_named_and_the_others_still_list(tmp_path, damage, message):
    store = RunStore(tmp_path)
    _run(store, "good")
    damage(_run(store, "bad").path)
    (tmp_path / "not a run!").mkdir()
    (tmp_path / "stray.txt").write_text("hello")
    runs, bad = store.scan()
    assert [r.run_id for r in runs] == ["good"]
    reasons = {p.name: why for p, why in bad}
    assert message in reasons["bad"] and "invalid run id" in reasons["not a run!"] and "stray.txt" in reasons
    with pytest.raises(StoreError, match=message):
        store.load("bad")


def test_a_store_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="is not a directory"):
        RunStore(tmp_path / "f").list()
    with pytest.raises(StoreError, match="is not a directory"):
        RunStore(tmp_path / "f").create("r", MANIFEST)
    with pytest.raises(StoreError, match="cannot create run store"):
        RunStore(tmp_path / "f" / "under").create("r", MANIFEST)


def test_journal_rows_that_are_not_records_are_refused(tmp_path):
    store = RunStore(tmp_path)
    partial = store.create("r", MANIFEST)
    partial.journal_path.write_text(json.dumps({"task": "t", "chunk": 0, "rows": "nope"}) + "\n")
    with pytest.raises(StoreError, match="line 1 is not a journal record"):
        store.open_partial("r").finished_chunks()


def test_runs_and_artifacts_written_by_the_previous_version_still_load(tmp_path):
    shutil.copytree(LEGACY, tmp_path / "legacy")
    store = RunStore(tmp_path / "legacy" / "runs")
    run = store.load("legacy-run")
    assert len(run.samples) == 6 and set(run.metrics["tasks"]) == {"arc_easy", "mmlu_anatomy"}
    assert run.verify() == ["run legacy-run: written before file digests were recorded; cannot verify"]
    from workbench.interp import artifacts

    att = artifacts.load("attention-legacy", tmp_path / "legacy" / "artifacts")
    lens = artifacts.load("logit_lens-legacy", tmp_path / "legacy" / "artifacts")
    assert att.patterns.ndim == 4 and len(lens.top) > 0
    assert [m["id"] for m in artifacts.list_artifacts(tmp_path / "legacy" / "artifacts")] == [
        "attention-legacy", "logit_lens-legacy"]


def test_artifact_files_are_checked_and_a_bad_entry_does_not_hide_the_rest(tmp_path):
    shutil.copytree(LEGACY / "artifacts", tmp_path / "a")
    store = ArtifactStore(tmp_path / "a")
    manifest = store.read_manifest("logit_lens-legacy")
    manifest["id"] = "logit_lens-new"
    store.save({k: v for k, v in manifest.items() if k not in ("arrays", "tables", "files", "format")}, {},
               {"top": pd.read_parquet(tmp_path / "a" / "logit_lens-legacy" / "top.parquet")})
    assert store.verify("logit_lens-new") == []
    (tmp_path / "a" / "logit_lens-new" / "top.parquet").write_bytes(b"garbage")
    from workbench.interp import artifacts

    with pytest.raises(ArtifactError, match="top.parquet does not match its recorded sha256"):
        artifacts.load("logit_lens-new", tmp_path / "a")
    (tmp_path / "a" / "attention-legacy" / "manifest.json").write_text('{"id": "attention-legacy"}')  # no kind
    (tmp_path / "a" / "junk").mkdir()
    manifests, bad = store.scan()
    assert [m["id"] for m in manifests] == ["logit_lens-legacy", "logit_lens-new"]
    assert {p.name for p, _ in bad} == {"attention-legacy", "junk"}


def test_cli_verify_and_list_report_damage_in_one_line_each(tmp_path, run_cli):
    store = RunStore(tmp_path / "runs")
    _run(store, "good")
    bad = _run(store, "bad")
    (bad.path / "samples.parquet").write_bytes(b"PAR1 broken")
    r = run_cli("runs", "verify", "--store", str(store.root))
    assert r.returncode == 1 and "FAIL run bad: samples.parquet does not match" in r.stdout and "Traceback" not in r.stderr
    assert run_cli("runs", "verify", "good", "--store", str(store.root)).returncode == 0
    (tmp_path / "runs" / "stray").mkdir()
    r = run_cli("runs", "list", "--store", str(store.root))
    assert r.returncode == 0 and "good" in r.stdout and "skipped" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("artifacts", "list", "--artifacts", str(tmp_path / "runs" / "good" / "metrics.json"))
    assert r.returncode == 2 and r.stderr.strip().startswith("workbench: error:") and len(r.stderr.splitlines()) == 1
