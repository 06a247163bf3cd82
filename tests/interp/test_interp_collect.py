"""Activation corpora: hook-layer activations equal raw HF hidden states; resuming gives the same shards;
provenance per shard; bad input is one line and exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.interp import collect as C
from workbench.store.activations import ActivationStore
from workbench.store.publish import sha256_file


def _open(result):
    return ActivationStore(Path(result.path).parent).open(result.corpus_id)


def _hf_reference(model, ids: list[int], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """resid_post and the MLP's down-projection input of one unpadded document, straight from HF."""
    seen = {}
    mlp = model.hf.get_decoder().layers[layer].mlp
    handle = mlp.down_proj.register_forward_pre_hook(lambda m, args: seen.__setitem__("neurons", args[0].detach()))
    try:
        with torch.no_grad():
            out = model.hf(torch.tensor([ids]), output_hidden_states=True)
    finally:
        handle.remove()
    return out.hidden_states[layer + 1][0].numpy(), seen["neurons"][0].numpy()


def test_collected_activations_equal_raw_hf_hidden_states(tiny_hooked, tiny_corpus):
    c = _open(tiny_corpus)
    assert c.complete and tiny_corpus.n_tokens == 3000 == c.n_tokens
    checked = 0
    for _record, arr in c.iter_shards():
        for doc in np.unique(arr["doc"])[:3]:
            rows = arr["doc"] == doc
            ids = arr["tokens"][rows].tolist()
            assert arr["pos"][rows].tolist() == list(range(len(ids)))
            # layer 0 is the only one whose resid_post HF reports unnormalised (the last gets the final norm)
            resid, neurons = _hf_reference(tiny_hooked, ids, 0)
            np.testing.assert_allclose(arr["blocks.0.hook_resid_post"][rows].astype(np.float32), resid, rtol=2e-3, atol=1e-4)
            np.testing.assert_allclose(arr["blocks.0.mlp.hook_post"][rows].astype(np.float32), neurons, rtol=2e-3,
                                       atol=1e-4)
            _, neurons1 = _hf_reference(tiny_hooked, ids, 1)
            np.testing.assert_allclose(arr["blocks.1.mlp.hook_post"][rows].astype(np.float32), neurons1, rtol=2e-3,
                                       atol=1e-4)
            checked += 1
    assert checked >= 6


def test_shards_record_their_provenance(tiny_corpus, real_data_dir):
    c = _open(tiny_corpus)
    sources = set()
    for record in c.shards():
        assert len(record["docs"]["doc"]) == record["n_docs"] == len(record["docs"]["ref"])
        for f, s in record["sources"].items():
            assert s["sha256"] == sha256_file(real_data_dir / f)
            sources.add(f.split("/")[0])
    # round-robin over the six mirror sources: each appears within the first 3000 tokens
    assert sources == {"mmlu", "arc", "truthfulqa", "gsm8k", "humaneval", "bigbench"}
    assert tiny_corpus.sources["tokens"].sum() == 3000


def test_resuming_an_interrupted_collection_gives_the_same_shards(tiny_hooked, tmp_path, fixture_mirror):
    kw = dict(layers=[1], sites=["resid_post"], tokens=900, shard_tokens=200, batch_tokens=256, max_len=48,
              data_dir=fixture_mirror, progress=False)
    whole = C.run(tiny_hooked, activations=tmp_path / "a", **kw)

    def stop(index: int) -> None:
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        C.run(tiny_hooked, activations=tmp_path / "b", on_shard=stop, **kw)
    (cid,) = [p.name for p in (tmp_path / "b").iterdir()]
    part = ActivationStore(tmp_path / "b").open(cid)
    assert not part.complete and len(part.shards()) == 2
    (part.path / ".shard-00002.safetensors.tmp").write_bytes(b"an interrupted write")
    resumed = C.run(tiny_hooked, activations=tmp_path / "b", resume=cid, **kw)
    assert resumed.resumed_shards == 2 and resumed.n_shards == whole.n_shards >= 4
    a, b = ActivationStore(tmp_path / "a").open(whole.corpus_id), ActivationStore(tmp_path / "b").open(cid)
    assert [s["sha256"] for s in a.shards()] == [s["sha256"] for s in b.shards()]
    assert [s["docs"] for s in a.shards()] == [s["docs"] for s in b.shards()]
    assert not (b.path / ".shard-00002.safetensors.tmp").exists()
    with pytest.raises(Exception, match="already complete"):
        C.run(tiny_hooked, activations=tmp_path / "b", resume=cid, **kw)


def test_user_jsonl_corpus(tiny_hooked, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"id": i, "text": f"The heart pumps blood number {i}."}) for i in range(5))
                 + "\n" + json.dumps({"text": "The heart pumps blood number 0."}) + "\n")
    r = C.run(tiny_hooked, layers=[0], corpus=str(f), split="all", tokens=10_000, activations=tmp_path / "a",
              progress=False)
    assert r.n_docs == 5  # the duplicate line is dropped
    rec = ActivationStore(tmp_path / "a").open(r.corpus_id).shards()[0]
    assert rec["docs"]["ref"][:2] == ["mine.jsonl#1", "mine.jsonl#2"]


@pytest.mark.parametrize("argv,message", [
    (["--layers", "7"], "layer 7 is out of range"),
    (["--layers", "0", "--sites", "resid_pots"], "unknown activation site 'resid_pots'"),
    (["--layers", "0", "--corpus", "{empty}", "--split", "all"], "has no text to collect"),
    (["--layers", "0", "--tokens", "0"], "--tokens: must be at least 1"),
    (["--layers", "0", "--corpus", "{missing}"], "neither `mirror` nor an existing file"),
])
def test_collect_bad_input_is_one_line_exit_2(argv, message, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    argv = [a.format(empty=tmp_path / "empty.txt", missing=tmp_path / "nope.txt") for a in argv]
    try:
        rc = main(["interp", "collect", "--model", f"hf:{tiny_model_dir}", "--activations", str(tmp_path / "acts"),
                   "--artifacts", str(tmp_path / "arts"), "--no-progress", *argv])
    except SystemExit as exc:  # argparse refuses a bad --tokens before the model loads
        rc = exc.code
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert rc == 2 and len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "acts").exists() or not any((tmp_path / "acts").iterdir())


def test_corrupt_shard_is_one_line_exit_2(tiny_model_dir, tmp_path, fixture_mirror, capsys):
    acts, arts = tmp_path / "acts", tmp_path / "arts"
    base = ["--model", f"hf:{tiny_model_dir}", "--activations", str(acts), "--artifacts", str(arts)]
    assert main(["interp", "collect", *base, "--layers", "1", "--sites", "mlp_neurons", "--tokens", "300",
                 "--data-dir", str(fixture_mirror), "--no-progress", "--quiet"]) == 0
    cid = capsys.readouterr().out.strip()
    shard = acts / cid / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    rc = main(["interp", "neurons", *base, "--layer", "1", "--corpus", cid])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("workbench: error:")]
    assert rc == 2 and len(lines) == 1 and "is corrupt" in lines[0], err


@pytest.mark.slow
def test_smollm2_collected_activations_equal_hf_hidden_states(smol_hooked, real_data_dir, tmp_path):
    r = C.run(smol_hooked, layers=[15], sites=["resid_post", "mlp_neurons"], tokens=300, shard_tokens=150,
              data_dir=real_data_dir, activations=tmp_path, progress=False)
    c = _open(r)
    assert c.complete and r.n_tokens == 300 and r.n_shards >= 2
    for _, arr in c.iter_shards():
        doc = arr["doc"][-1]
        rows = arr["doc"] == doc
        resid, neurons = _hf_reference(smol_hooked, arr["tokens"][rows].tolist(), 15)
        np.testing.assert_allclose(arr["blocks.15.hook_resid_post"][rows].astype(np.float32), resid, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(arr["blocks.15.mlp.hook_post"][rows].astype(np.float32), neurons, rtol=2e-3,
                                   atol=2e-3)
