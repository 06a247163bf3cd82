
import pandas as pd
import pytest

from workbench.errors import StoreError
from workbench.store import RunStore, validate_run_id

# The least a run manifest holds (the harness writes much more).
MANIFEST = {"created": "2026-01-01T00:00:00", "request": {"model": "hf:x"}, "model": {"spec": "hf:x"}, "tasks": {}}


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", "x/../../etc", ".hidden", "a" * 200, "a\\b"])
def test_run_ids_that_could_escape_the_store_are_rejected(bad):
    with pytest.raises(StoreError):
        validate_run_id(bad)


def test_partial_run_is_never_listed_and_publish_is_atomic(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("r1", MANIFEST)
    run.append_chunk("t", 0, [{"doc_id": 0, "acc": 1.0}])
    assert store.list() == []
    assert [p.run_id for p in store.partial()] == ["r1"]
    with pytest.raises(StoreError, match="incomplete"):
        store.load("r1")
    published = store.publish(run, pd.DataFrame([{"task": "t", "doc_id": 0, "acc": 1.0}]), {"tasks": {}})
    assert [r.run_id for r in store.list()] == ["r1"]
    assert published.manifest["status"] == "complete"
    assert list(store.partial()) == []
    assert published.samples["acc"].tolist() == [1.0]
    assert not (published.path / "journal.jsonl").exists()


def test_torn_journal_line_is_dropped_and_truncated(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("r2", MANIFEST)
    run.append_chunk("t", 0, [{"doc_id": 0}])
    run.append_chunk("t", 1, [{"doc_id": 1}])
    with open(run.journal_path, "ab") as fh:  # what a SIGKILL mid-write leaves behind
        fh.write(b'{"task": "t", "chunk": 2, "rows": [{"doc')
    done = store.open_partial("r2").finished_chunks()
    assert sorted(done) == [("t", 0), ("t", 1)]
    run.append_chunk("t", 2, [{"doc_id": 2}])
    assert sorted(store.open_partial("r2").finished_chunks()) == [("t", 0), ("t", 1), ("t", 2)]


def test_create_refuses_existing_ids_and_resume_refuses_complete_runs(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("r3", MANIFEST)
    with pytest.raises(StoreError, match="already exists"):
        store.create("r3", MANIFEST)
    store.publish(run, pd.DataFrame([{"task": "t", "doc_id": 0}]), {})
    with pytest.raises(StoreError, match="already complete"):
        store.open_partial("r3")
    with pytest.raises(StoreError, match="no interrupted run"):
        store.open_partial("nope")


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STORE", str(tmp_path / "env-store"))
    assert RunStore().root == (tmp_path / "env-store").resolve()
