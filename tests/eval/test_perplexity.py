"""Perplexity tasks: documents from a corpus (file, JSONL, folder), lm-eval's per-document metrics and
its weighted aggregates, and bad corpora refused before anything reaches the store."""
import json
import math
import re

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.eval import tasks as T

DOCS = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n#### 42",
        "Which organ pumps blood? The heart, the lung, the kidney and the liver are organs. " * 8,
        "What do plants need to make food? Sunlight, water and air.", "1234567890 () [] {}"]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(DOCS[0])
    (folder / "sub" / "b.py").write_text(DOCS[1])
    (folder / "c.jsonl").write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS[2:])))
    (folder / ".hidden").write_text("not a document")
    return folder


def _docs(path):
    built = T.build(T.resolve([f"perplexity:{path}"])[0])
    return [d["text"] for d in built.task.eval_docs], built


def test_corpus_layouts_give_documents_and_pin_every_file(corpus):
    docs, built = _docs(corpus)
    assert docs == [DOCS[0], *DOCS[2:], DOCS[1]]  # files sorted by path: a.txt, c.jsonl, sub/b.py
    assert [f.path for f in built.files] == [str(corpus / "a.txt"), str(corpus / "c.jsonl"), str(corpus / "sub/b.py")]
    assert [f.rows for f in built.files] == [1, 3, 1] and all(len(f.sha256) == 64 for f in built.files)
    assert built.spec.name == f"perplexity:{corpus}" and built.task.OUTPUT_TYPE == "loglikelihood_rolling"
    assert _docs(corpus / "c.jsonl")[0] == DOCS[2:] and _docs(corpus / "a.txt")[0] == [DOCS[0]]


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "is a binary file"),
    (b"\xff\xfe not utf-8", "is not UTF-8 text"),
    (b"   \n\t\n", "empty document"),
])
def test_bad_documents_are_refused_naming_the_file(tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=message):
        _docs(bad)


def test_bad_jsonl_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "docs.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(DataError, match=r"docs.jsonl line 2: empty document"):
        _docs(bad)
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"docs.jsonl line 2: .*'text' field"):
        _docs(bad)


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="corpus not found"):
        T.resolve([f"perplexity:{tmp_path / 'nope'}"])
    with pytest.raises(Exception, match="needs a path"):
        T.resolve(["perplexity:"])


def test_builtin_corpora(real_data_dir):
    code = T.build(T.resolve(["perplexity_code"])[0], real_data_dir)
    assert len(code.task.eval_docs) == 164
    first = code.task.eval_docs[0]
    assert first["text"].startswith("from typing import List\n\n\ndef has_close_elements(")
    assert first["text"].endswith("    return False\n")  # the canonical solution follows the prompt
    math_ = T.build(T.resolve(["perplexity_math"])[0], real_data_dir)
    assert len(math_.task.eval_docs) == 7473 and math_.task.eval_docs[0]["text"].endswith("#### 72")


@pytest.fixture
def ppl_run(tiny_model_dir, corpus, tmp_path):
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    store = RunStore(tmp_path / "runs")
    run = run_eval(EvalRequest(model=f"hf:{tiny_model_dir}", tasks=[f"perplexity:{corpus}"], chunk_size=2),
                   store=store, progress=False, run_id="ppl-a")
    return store, run, f"perplexity:{corpus}"


def test_run_stores_per_document_metrics_and_lm_eval_weighted_aggregates(ppl_run):
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity

    _, run, task = ppl_run
    df = run.samples
    assert len(df) == 5 and run.manifest["tasks"][task]["aggregations"] == {
        "word_perplexity": "weighted_perplexity", "byte_perplexity": "weighted_perplexity",
        "bits_per_byte": "bits_per_byte"}
    ll = np.array([x[0] for x in df["loglikelihoods"]])
    words = np.array([len(re.split(r"\s+", p)) for p in df["prompt"]])
    nbytes = np.array([len(p.encode()) for p in df["prompt"]])
    assert np.allclose(df["word_perplexity"], np.exp(-ll / words))
    assert np.allclose(df["bits_per_byte"], -ll / nbytes / math.log(2))
    assert (df["byte_perplexity|den"] == nbytes).all() and (df["word_perplexity|num"] == ll).all()
    m = run.metrics["tasks"][task]
    assert set(m) == {"word_perplexity", "byte_perplexity", "bits_per_byte"}
    # The scope's value is lm-eval's aggregation over (ll, count) items, not a mean of per-document values.
    assert m["word_perplexity"]["value"] == pytest.approx(weighted_perplexity(list(zip(ll, words))))
    assert m["byte_perplexity"]["value"] == pytest.approx(weighted_perplexity(list(zip(ll, nbytes))))
    assert m["bits_per_byte"]["value"] == pytest.approx(bits_per_byte(list(zip(ll, nbytes))))
    assert m["word_perplexity"]["value"] != pytest.approx(df["word_perplexity"].mean())
    for e in m.values():
        assert e["ci95_low"] <= e["value"] <= e["ci95_high"] and e["stderr"] > 0 and e["n"] == 5
    assert run.manifest["tasks"][task]["directions"]["bits_per_byte"] == "lower"


def test_cli_refuses_bad_corpora_with_one_line_and_an_empty_store(run_cli, tmp_path, tiny_model_dir):
    store = tmp_path / "store"
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    empty = tmp_path / "docs"
    empty.mkdir()
    (empty / "ok.txt").write_text("some text")
    (empty / "blank.md").write_text("\n\n")
    for target, needle in ((tmp_path / "missing.txt", "corpus not found"), (binary, "binary file"),
                           (empty, "empty document")):
        res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", f"perplexity:{target}", "--store", str(store))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        lines = [l for l in res.stderr.splitlines() if l.startswith("workbench: error:")]
        assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not store.exists() or not any(store.rglob("*"))


def test_compare_leaderboard_uses_the_weighted_aggregate(ppl_run):
    from conftest import derive_run

    from workbench.analysis.compare import compare_runs

    store, run, task = ppl_run

    def worse(df):
        df = df.copy()
        for m in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            df[f"{m}|num"] *= 1.1
        df["word_perplexity"] = np.exp(-df["word_perplexity|num"] / df["word_perplexity|den"])
        df["byte_perplexity"] = np.exp(-df["byte_perplexity|num"] / df["byte_perplexity|den"])
        df["bits_per_byte"] = -df["bits_per_byte|num"] / df["bits_per_byte|den"] / math.log(2)
        return df

    derive_run(store, "ppl-a", "ppl-b", worse)
    cmp = compare_runs([store.load("ppl-a"), store.load("ppl-b")])
    board = {(l.run_id, l.metric): l.estimate.value for l in cmp.leaderboard}
    for rid in ("ppl-a", "ppl-b"):
        assert board[(rid, "bits_per_byte")] == pytest.approx(store.load(rid).metrics["tasks"][task]["bits_per_byte"]["value"])
    assert board[("ppl-b", "bits_per_byte")] == pytest.approx(1.1 * board[("ppl-a", "bits_per_byte")])
