"""Circuit discovery end to end: faithfulness end points, exact scoring, task data, artifacts, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.interp import artifacts
from workbench.interp import circuit as C
from workbench.interp.circuit_tasks import abba, load_jsonl, load_task
from workbench.interp.errors import InterpError, TokenError

from .conftest import TINY_PAIRS

ATOL = 1e-4


def test_tiny_circuit_end_points_and_exact_scores(tiny_hooked, tiny_task, tmp_path):
    r = C.run(tiny_hooked, tiny_task, methods=["eap", "exact"], top_edges=None, exact_sample=0, batch_size=3)
    n_edges = r.graph["n_edges"]
    assert n_edges == len(r.edges) == 82
    for m in ("eap", "exact"):
        curve = r.curve(m).set_index("k")
        assert curve.loc[0, "faithfulness"] == pytest.approx(0.0, abs=ATOL)
        assert curve.loc[n_edges, "faithfulness"] == pytest.approx(1.0, abs=ATOL)
        assert curve.loc[n_edges, "metric"] == pytest.approx(r.clean_metric, abs=ATOL)
    # with every edge scored exactly, EAP's correlation is measured over all edges
    assert r.rank_correlation["eap"]["n"] == n_edges and -1 <= r.rank_correlation["eap"]["uniform"] <= 1
    # the smallest >= 80% circuit really reaches 80% when measured again
    s = r.smallest["exact"]
    patcher = C.EdgePatcher(tiny_hooked)
    batches = C.make_batches(tiny_hooked, tiny_task, 8)
    C.cache_batches(patcher, batches)
    kept = C.top_k(patcher.graph, C.exact_scores(patcher, batches), s["k"])
    value = C.circuit_metric(patcher, batches, kept)
    assert (value - r.corrupt_metric) / (r.clean_metric - r.corrupt_metric) == pytest.approx(s["faithfulness"], abs=ATOL)
    assert s["faithfulness"] >= 0.8 and len(r.circuit_edges("exact", s["k"])) == s["edges_on_path"]
    # artifact round trip
    aid = artifacts.save(r, tmp_path)
    back = artifacts.load(aid, tmp_path)
    assert isinstance(back, C.CircuitResult) and back.smallest == r.smallest
    assert back.edges[["upstream", "downstream"]].equals(r.edges[["upstream", "downstream"]])
    assert "faithfulness by K" in back.summary()


def test_exact_sample_and_eap_ig(tiny_hooked, tiny_task):
    r = C.run(tiny_hooked, tiny_task, methods=["eap", "eap-ig"], top_edges=[0, 5, 82], ig_steps=3, exact_sample=10)
    sampled = r.edges[r.edges["exact_sample"] != ""]
    assert len(sampled) == 10 and sampled["exact"].notna().all() and r.edges["exact"].isna().sum() == 72
    assert set(sampled["exact_sample"]) == {"uniform", "top_eap"}
    assert set(r.rank_correlation) == {"eap", "eap-ig"}
    assert r.rank_correlation["eap"]["n_uniform"] == 5
    assert set(r.faithfulness["method"]) == {"eap", "eap-ig"}


def test_padding_changes_nothing(tiny_hooked, tiny_task):
    """Batches right-pad shorter prompts; each example's metrics equal its unpadded run."""
    patcher = C.EdgePatcher(tiny_hooked)
    padded = C.make_batches(tiny_hooked, tiny_task, 8)
    single = C.make_batches(tiny_hooked, tiny_task, 1)
    assert len(padded) == 1 and len(set(padded[0].last.tolist())) > 1
    C.cache_batches(patcher, padded)
    C.cache_batches(patcher, single)
    by_row = {b.rows[0]: float(b.clean_metric[0]) for b in single}
    for j, i in enumerate(padded[0].rows):
        assert float(padded[0].clean_metric[j]) == pytest.approx(by_row[i], abs=1e-5)
    np.testing.assert_allclose(C.eap_scores(patcher, padded).numpy(), C.eap_scores(patcher, single).numpy(), atol=1e-5)


def test_jsonl_task_errors(tiny_hooked, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"clean": c, "corrupt": k, "answer": " the", "wrong": " a"})
                              for c, k in TINY_PAIRS) + "\n")
    data = load_jsonl(good, tiny_hooked)
    assert len(data.examples) == 4 and data.metric == "logit_diff"
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"clean": "The heart pumps blood", "answer": " the"}) + "\n")
    with pytest.raises(InterpError, match="line 1: missing or non-string field.*corrupt, wrong"):
        load_jsonl(missing, tiny_hooked)
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"clean": "a", "corrupt": "b", "answer": " xylophone quartet", "wrong": " a"}) + "\n")
    with pytest.raises(TokenError, match="line 1: answer"):
        load_jsonl(long, tiny_hooked)
    with pytest.raises(InterpError, match="neither a known task"):
        load_task(str(tmp_path / "nope.jsonl"), tiny_hooked, 3)
    with pytest.raises(InterpError, match="unknown circuit task"):
        load_task("iio", tiny_hooked, 3)


def test_k_beyond_the_graph_and_unknown_method(tiny_hooked, tiny_task):
    with pytest.raises(InterpError, match="more than the 82 edges"):
        C.run(tiny_hooked, tiny_task, methods=["eap"], top_edges=[10, 83])
    with pytest.raises(InterpError, match="unknown circuit method"):
        C.run(tiny_hooked, tiny_task, methods=["acdc"])


def test_ioi_templates():
    assert abba("Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to") == \
        "Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to"


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("argv,message", [
    (["interp", "trace", "--model", "{tiny}", "--prompt", "The heart pumps blood", "--subject", "kidney",
      "--target", " the"], "does not occur in the prompt"),
    (["interp", "trace", "--model", "{tiny}", "--prompt", "The heart pumps blood", "--subject", "heart",
      "--target", " xylophone quartet"], "not a single token"),
    (["interp", "trace", "--model", "{tiny}", "--prompt", "The heart pumps blood", "--target", " the"],
     "--subject is required"),
    (["interp", "trace", "--model", "{tiny}"], "nothing to trace"),
    (["interp", "trace", "--model", "{tiny}", "--facts", "{tmp}/none.json"], "not found"),
    (["interp", "circuit", "--model", "{tiny}", "--task", "{tmp}/missing.jsonl"], "missing or non-string field"),
    (["interp", "circuit", "--model", "{tiny}", "--task", "{tmp}/good.jsonl", "--top-edges", "5", "1000"],
     "more than the 82 edges"),
    (["interp", "circuit", "--model", "{tiny}", "--task", "ioi_typo"], "unknown circuit task"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "missing.jsonl").write_text(json.dumps({"clean": "x", "corrupt": "y", "answer": " the"}) + "\n")
    (tmp_path / "good.jsonl").write_text(json.dumps({"clean": TINY_PAIRS[0][0], "corrupt": TINY_PAIRS[0][1],
                                                     "answer": " the", "wrong": " a"}) + "\n")
    argv = [a.format(tiny=f"hf:{tiny_model_dir}", tmp=tmp_path) for a in argv]
    rc, _, err = _run(capsys, *argv, "--artifacts", str(tmp_path / "a"))
    assert rc == 2, err
    lines = [l for l in err.splitlines() if l.startswith("workbench: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_cli_circuit_and_trace_save_artifacts(tiny_model_dir, tmp_path, capsys):
    task = tmp_path / "t.jsonl"
    task.write_text("\n".join(json.dumps({"clean": c, "corrupt": k, "answer": " the", "wrong": " a"})
                              for c, k in TINY_PAIRS) + "\n")
    arts = str(tmp_path / "arts")
    rc, out, err = _run(capsys, "interp", "circuit", "--model", f"hf:{tiny_model_dir}", "--task", str(task),
                        "--method", "eap", "--top-edges", "0", "10", "82", "--exact-sample", "4", "--artifacts", arts)
    assert rc == 0, err
    r = artifacts.load(out.strip(), arts)
    assert r.task == "t" and {0, 10, 82} <= set(r.curve("eap")["k"]) and "faithfulness by K" in err
    rc, out, err = _run(capsys, "interp", "trace", "--model", f"hf:{tiny_model_dir}", "--prompt", "The heart pumps blood",
                        "--subject", "heart", "--target", " the", "--samples", "2", "--kinds", "state",
                        "--artifacts", arts)
    assert rc == 0, err
    r = artifacts.load(out.strip(), arts)
    assert r.kinds == ["state"] and r.samples == 2 and r.meta.params["noise"] == "3sigma"


@pytest.mark.slow
def test_smollm2_ioi_faithfulness_end_points(smol_hooked):
    data = load_task("ioi", smol_hooked, 3, seed=0)
    for ex in data.examples:
        assert len(smol_hooked.tokenize(ex.clean)[0]) == len(smol_hooked.tokenize(ex.corrupt)[0])
    r = C.run(smol_hooked, data, methods=["eap"], top_edges=[0, 70651], exact_sample=0)
    assert r.graph == {"n_layers": 30, "n_heads": 9, "n_kv": 3, "n_edges": 70651}
    curve = r.curve("eap").set_index("k")["faithfulness"]
    assert curve[0] == pytest.approx(0.0, abs=1e-3) and curve[70651] == pytest.approx(1.0, abs=1e-3)
    assert r.clean_metric > r.corrupt_metric


@pytest.mark.slow
def test_greater_than_task_on_smollm2(smol_hooked):
    data = load_task("greater_than", smol_hooked, 4, seed=0)
    ex = data.examples[0]
    start, century = ex.clean.split()[-5], ex.clean.split()[-1]
    assert start.startswith(century) and ex.corrupt.split()[-5] == century + "01"
    tens = int(ex.answer.split()[-1])
    assert ex.weights[tens] == 0 and ex.weights[tens + 1] == 1 and ex.weights[tens - 1] == -1
    assert len(smol_hooked.tokenize(ex.clean)[0]) == len(smol_hooked.tokenize(ex.corrupt)[0])
