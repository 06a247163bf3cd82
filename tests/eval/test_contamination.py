"""Contamination: lm-eval's n-gram rule on streamed corpora, the stored per-item table joined to real
runs, Min-K% Prob against the backend's own rolling log-likelihood, and bad corpus input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.compare import compare_runs
from workbench.analysis.contamination import split_by_contamination
from workbench.eval import contamination as C
from workbench.eval import tasks as T
from workbench.eval.harness import EvalRequest, run_eval
from workbench.store import RunStore
from workbench.store.contamination import ContaminationStore


def _random_docs(seed: int, n_docs: int = 40) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)] + ["The", "cat,", "sat.", "ON!", "mat", "--", "(A)", "é"]
    return [" ".join(rng.choice(vocab, rng.integers(3, 60))) + rng.choice(["\n", "  ", "\t"]) for _ in range(n_docs)]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "parquet"])
def test_streamed_matches_equal_lm_eval_word_ngrams(fmt, tmp_path, monkeypatch):
    """Whatever the block and flush sizes, the matched n-grams are exactly the set intersection of
    janitor.word_ngrams of the items and of the corpus (per document; a text file is one document)."""
    monkeypatch.setattr(C, "_BLOCK_BYTES", 37)      # cut mid-word and mid-character
    monkeypatch.setattr(C, "_FLUSH_WORDS", 23)
    docs = _random_docs(0)
    items = _random_docs(1, 60)[:30] + [docs[3][:200], docs[7] + " " + docs[8]]  # two planted, one across docs
    n = 4
    if fmt == "text":
        path = tmp_path / "corpus.txt"
        path.write_text("".join(docs), encoding="utf-8")
        corpus_grams = C.item_ngrams("".join(docs), n)
    else:
        corpus_grams = set().union(*(C.item_ngrams(d, n) for d in docs))
        if fmt == "jsonl":
            path = tmp_path / "corpus.jsonl"
            path.write_text("\n".join(json.dumps({"body": d}) for d in docs) + "\n\n", encoding="utf-8")
        else:
            path = tmp_path / "corpus.parquet"
            pd.DataFrame({"body": docs}).to_parquet(path)
    index = C.NgramIndex(items, n)
    files = C.corpus_files([path])
    info = C.scan_corpus(index, files, text_field="body")
    total, hit = index.item_counts()
    assert list(total) == [len(C.item_ngrams(t, n)) for t in items]
    assert list(hit) == [len(C.item_ngrams(t, n) & corpus_grams) for t in items]
    assert hit[-2] == total[-2] > 0
    assert info["documents"] == (1 if fmt == "text" else len(docs))
    assert info["words"] == sum(len(C.normalizer()(d).split()) for d in docs)
    from workbench.store.publish import sha256_file

    assert files[0].sha256 == sha256_file(path) and info["files"][0]["bytes"] == path.stat().st_size


def test_a_giant_word_does_not_grow_memory_or_change_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "_BLOCK_BYTES", 16)
    monkeypatch.setattr(C, "_GIANT_WORD", 40)
    monkeypatch.setattr(C, "_FLUSH_WORDS", 5)
    text = "alpha beta gamma delta " + "x" * 500 + " epsilon zeta eta theta iota " + "y" * 300
    path = tmp_path / "minified.txt"
    path.write_text(text, encoding="utf-8")
    pieces = [p for p, _ in C.documents(C.corpus_files([path])[0])]
    assert max(len(p) for p in pieces) < 100 and "".join(pieces).split() == (
        ["alpha", "beta", "gamma", "delta", "\x00", "epsilon", "zeta", "eta", "theta", "iota", "\x00"])
    items = ["beta gamma delta", "epsilon zeta eta", "delta epsilon zeta", "zeta eta theta iota"]
    index = C.NgramIndex(items, 3)
    C.scan_corpus(index, C.corpus_files([path]))
    assert list(index.item_counts()[1]) == [len(C.item_ngrams(t, 3) & C.item_ngrams(text, 3)) for t in items] == [1, 1, 0, 2]


def test_window_hashes_equal_per_window_hashing():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2**63, size=50, dtype=np.int64).view(np.uint64)
    h = C.window_hashes(tokens, 5)
    for i in (0, 17, 45):
        ref = np.uint64(0)
        for t in tokens[i:i + 5]:
            ref = ref * C._PRIME + t
        assert h[i] == ref
    assert len(C.window_hashes(tokens[:3], 5)) == 0


def test_item_text_is_lm_eval_decontamination_query(real_data_dir):
    arc = T.build(T.resolve(["arc_easy"])[0], real_data_dir).task
    doc = arc.eval_docs[0]
    text, source = C.item_text(arc, doc)
    assert source == "doc_to_decontamination_query" and text == f"Question: {doc['question']}\nAnswer:"
    tqa = T.build(T.resolve(["truthfulqa_mc1"])[0], real_data_dir).task
    assert C.item_text(tqa, tqa.eval_docs[0]) == (tqa.eval_docs[0]["question"], "doc_to_decontamination_query")
    mmlu = T.build(T.resolve(["mmlu_anatomy"])[0], real_data_dir).task
    assert C.item_text(mmlu, mmlu.eval_docs[0]) == (mmlu.doc_to_text(mmlu.eval_docs[0]), "doc_to_text")


def _verbatim(doc: dict) -> str:
    """An MMLU item as a web page might quote it: question, then (A)-(D) choices."""
    return doc["question"] + "\n" + "\n".join(f"({'ABCD'[i]}) {c}" for i, c in enumerate(doc["choices"]))


PLANTED = (1, 4, 9, 12, 17)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_model_dir, real_data_dir):
    """A real run (tiny model, 20 anatomy + 10 ARC items) and a JSONL corpus quoting 5 anatomy items
    verbatim among unrelated documents."""
    root = tmp_path_factory.mktemp("contamination")
    store = RunStore(root / "runs")
    req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=["mmlu_anatomy", "arc_easy"], data_dir=str(real_data_dir),
                      limit=20)
    run = run_eval(req, store=store, run_id="base", progress=False)
    docs = T.build(T.resolve(["mmlu_anatomy"])[0], real_data_dir).task.eval_docs
    corpus = root / "corpus"
    corpus.mkdir()
    filler = [f"Notes on page {i}: the weather was mild and the committee met on Tuesday." for i in range(30)]
    lines = filler[:10] + [_verbatim(docs[i]) for i in PLANTED] + filler[10:]
    (corpus / "web.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in lines) + "\n", encoding="utf-8")
    (corpus / "notes.md").write_text("\n\n".join(filler), encoding="utf-8")
    (corpus / ".hidden.txt").write_text(_verbatim(docs[0]), encoding="utf-8")   # hidden files are skipped
    return store, run, corpus


def test_planted_items_are_flagged_and_joined_to_the_run(planted, real_data_dir):
    store, run, corpus = planted
    req = C.ContaminationRequest(corpus=[str(corpus)], run="base", data_dir=str(real_data_dir))
    result = C.run_contamination(req, store=store.root)
    items = result.items
    anatomy = items[items.task == "mmlu_anatomy"].set_index("doc_id")
    assert set(anatomy.index[anatomy["contaminated"].fillna(False)]) == set(PLANTED)
    assert (anatomy.loc[list(PLANTED), "overlap"] > 0.5).all()
    arc = items[items.task == "arc_easy"]
    assert not arc["contaminated"].fillna(False).any()
    assert arc["contaminated"].isna().sum() == (arc["n_words"] < 13).sum()   # too short for a 13-gram: untested
    m = result.manifest
    assert [f["path"].rsplit("/", 1)[-1] for f in m["corpus"]["files"]] == ["notes.md", "web.jsonl"]
    assert m["summary"]["mmlu_anatomy"]["contaminated"] == len(PLANTED) and m["ngram"] == 13
    assert ContaminationStore(store.root).artifacts.verify(result.result_id) == []
    assert store.list()[0].run_id == "base" and len(store.list()) == 1   # runs untouched, result not a run
    # --tasks mode keys items by the same prompt hashes the harness stored
    by_tasks = C.run_contamination(C.ContaminationRequest(corpus=[str(corpus / "web.jsonl")],
                                                          tasks=["mmlu_anatomy", "arc_easy"], limit=20,
                                                          data_dir=str(real_data_dir)), store=store.root)
    keys = ["task", "doc_id", "prompt_hash"]
    assert by_tasks.items[keys].equals(items[keys])

    c = compare_runs([run, _copy(store)], n_boot=200)
    split = split_by_contamination(c, result, n_boot=200)
    assert split.n_covered == split.n_items == len(run.samples) and split.n_contaminated == len(PLANTED)
    row = next(r for r in split.rows if r.run_id == "base" and r.scope.name == "mmlu")
    acc = run.samples.set_index(["task", "doc_id"]).loc["mmlu_anatomy", "acc"]
    assert row.stats.n_y == len(PLANTED) and row.stats.mean_y == pytest.approx(acc.loc[list(PLANTED)].mean())
    from scipy.stats import fisher_exact

    x, y = acc.drop(list(PLANTED)), acc.loc[list(PLANTED)]
    assert row.stats.p_value == pytest.approx(fisher_exact([[x.sum(), len(x) - x.sum()], [y.sum(), len(y) - y.sum()]]).pvalue)


def test_benchmark_boilerplate_can_be_ignored(real_data_dir, tmp_path):
    """MMLU's moral-scenarios items share a 30-word preamble: one quoted item flags them all under
    lm-eval's rule; ignoring n-grams that many benchmark items share flags only the quoted one."""
    docs = T.build(T.resolve(["mmlu_moral_scenarios"])[0], real_data_dir).task.eval_docs
    corpus = tmp_path / "forum.txt"
    corpus.write_text("Someone posted this:\n" + _verbatim(docs[3]) + "\nThoughts?\n", encoding="utf-8")
    common = dict(corpus=[str(corpus)], tasks=["mmlu_moral_scenarios"], limit=10, data_dir=str(real_data_dir))
    plain = C.run_contamination(C.ContaminationRequest(**common), store=tmp_path / "s")
    assert plain.items["contaminated"].fillna(False).all()
    strict = C.run_contamination(C.ContaminationRequest(**common, ignore_shared=20), store=tmp_path / "s")
    flagged = strict.items.loc[strict.items["contaminated"].fillna(False).astype(bool), "doc_id"]
    assert list(flagged) == [3] and strict.manifest["n_ignored_ngrams"] > 10
    assert "more than 20 benchmark items ignored" in strict.manifest["rule"]


def _copy(store: RunStore):
    """A second run holding the same items (compare needs two)."""
    from conftest import derive_run

    derive_run(store, "base", "base-copy", lambda df: df)
    return store.load("base-copy")


def test_min_k_prob_is_the_backends_rolling_loglikelihood(tiny_model_dir):
    from lm_eval.api.instance import Instance

    from workbench.eval.models import load_model

    lm = load_model(f"hf:{tiny_model_dir}")
    try:
        lm._max_length = 24          # force several rolling windows
        texts = ["The quick brown fox jumps over the lazy dog. " * 4, "Which organ pumps blood?", "def add(a, b):"]
        lps = C.token_logprobs(lm, texts, batch_size=2)
        reqs = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
        ref = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
        assert [lp.sum() for lp in lps] == pytest.approx(ref, rel=1e-4)
        assert [len(lp) for lp in lps] == [len(lm.tok_encode(t)) for t in texts]
    finally:
        lm.close()
    lp = np.array([-0.1, -5.0, -0.3, -2.0, -0.2, -0.4, -0.1, -0.1, -0.1, -3.0])
    assert C.mink_prob(lp, 0.2) == pytest.approx((-5.0 - 3.0) / 2)     # the 2 lowest of 10
    assert C.mink_prob(lp[:3], 0.2) == pytest.approx(-5.0)           # at least one token


def test_labels_give_auroc_and_flag_precision_recall(planted, tiny_model_dir, real_data_dir, tmp_path):
    from sklearn.metrics import roc_auc_score

    store, _, corpus = planted
    labels = tmp_path / "labels.csv"
    labels.write_text("task,doc_id,member\n" + "".join(f"mmlu_anatomy,{i},{int(i in PLANTED)}\n" for i in range(20)))
    req = C.ContaminationRequest(corpus=[str(corpus / "web.jsonl")], tasks=["mmlu_anatomy"], limit=20,
                                 data_dir=str(real_data_dir), model=f"hf:{tiny_model_dir}", labels=str(labels))
    result = C.run_contamination(req, store=store.root)
    mem, items = result.manifest["membership"], result.items
    assert mem["n_labelled"] == 20 and mem["n_members"] == len(PLANTED)
    assert mem["flag"]["precision"] == 1.0 and mem["flag"]["recall"] == 1.0
    assert mem["auroc_overlap"]["value"] == 1.0
    ref = roc_auc_score(items["member"].astype(int), items["mink_prob"])
    assert mem["auroc_mink_prob"]["value"] == pytest.approx(ref)
    assert result.manifest["model"]["spec"] == f"hf:{tiny_model_dir}" and items["mink_prob"].notna().all()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "mmlu_anatomy", "doc_id": 99, "member": 1}\n')
    with pytest.raises(C.DataError, match="not among the scanned items"):
        C.run_contamination(C.ContaminationRequest(corpus=[str(corpus)], tasks=["mmlu_anatomy"], limit=20,
                                                   data_dir=str(real_data_dir), labels=str(bad)), store=store.root)


@pytest.mark.slow
def test_cli_compare_with_a_contamination_result(planted, real_data_dir, run_cli, tmp_path):
    store, _, corpus = planted
    scan = run_cli("contamination", "--corpus", str(corpus), "--run", "base", "--data-dir", str(real_data_dir),
                   "--store", str(store.root), "--json", "--no-progress")
    assert scan.returncode == 0, scan.stderr
    rid = json.loads(scan.stdout)["id"]
    if "base-copy" not in {r.run_id for r in store.list()}:
        _copy(store)
    res = run_cli("compare", "base", "base-copy", "--store", str(store.root), "--out", str(tmp_path / "out"),
                  "--contamination", rid, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    split = data["contamination"]
    assert split["result"] == rid and split["n_contaminated"] == len(PLANTED)
    assert {(r["run_id"], r["name"]) for r in split["rows"]} >= {("base", "mmlu"), ("base-copy", "arc_easy")}
    assert {r["name"] for r in data["calibration"]} == {"mmlu", "arc_easy"}
    md = next((tmp_path / "out").glob("*.md")).read_text(encoding="utf-8")
    assert f"Result {rid}" in md and "Δ (contaminated − clean)" in md
    listed = run_cli("contamination", "--list", "--store", str(store.root))
    assert listed.returncode == 0 and rid in listed.stdout
