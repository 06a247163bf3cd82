"""TopK SAEs: the spliced-loss code at both ends (identity-like SAE ~100%, zero SAE 0%), seeded training,
the library's own weight format, feature explanations, and bad input."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.interp import artifacts
from workbench.interp.sae import evaluate, heldout_batches, keep_rows, load_weights, sparsify
from workbench.interp.sae import run as train
from workbench.store.activations import ActivationStore


def _coder(d: int, latents: int, k: int):
    sp = sparsify()
    return sp.SparseCoder(d, sp.SparseCoderConfig(num_latents=latents, k=k), device="cpu", dtype=torch.float32)


def identity_sae(d: int):
    """2d latents, encoder [I; -I], decoder [I; -I], k = width: relu(x) - relu(-x) = x, a perfect reconstruction."""
    sae = _coder(d, 2 * d, 2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.encoder.weight.copy_(torch.cat([eye, -eye]))
        sae.encoder.bias.zero_()
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_dec.zero_()
    return sae.requires_grad_(False)


def zero_sae(d: int):
    sae = _coder(d, 4 * d, 4)
    for p in sae.parameters():
        p.data.zero_()
    return sae.requires_grad_(False)


@pytest.fixture(scope="module")
def heldout(tiny_hooked, real_data_dir):
    return heldout_batches(tiny_hooked, tokens=300, max_len=48, batch_tokens=256, data_dir=real_data_dir)


def test_spliced_loss_ends_identity_recovers_all_zero_recovers_nothing(tiny_hooked, heldout):
    hook = "blocks.0.hook_resid_post"
    ident = evaluate(tiny_hooked, identity_sae(tiny_hooked.d_model), hook, heldout)
    assert ident.fvu < 1e-10 and ident.ce_sae == pytest.approx(ident.ce_clean, abs=1e-5)
    assert abs(ident.ce_zero - ident.ce_clean) > 1e-3   # zero-ablating the layer does change the loss
    assert ident.loss_recovered == pytest.approx(1.0, abs=1e-2)
    assert ident.l0 <= 2 * tiny_hooked.d_model and ident.n_tokens > 200
    zero = evaluate(tiny_hooked, zero_sae(tiny_hooked.d_model), hook, heldout)
    assert zero.ce_sae == zero.ce_zero and zero.loss_recovered == 0.0
    assert zero.dead == 4 * tiny_hooked.d_model and zero.l0 == 0.0
    assert zero.ce_clean == ident.ce_clean and zero.ce_zero == ident.ce_zero


def test_sink_tokens_are_left_out_of_the_splice_and_the_fvu(tiny_hooked, heldout):
    hook = "blocks.0.hook_resid_post"
    _, cache = tiny_hooked.run_with_cache(heldout[0][0], [hook], need_logits=False)
    median = float(cache[hook][:, 1:].norm(dim=-1).median())
    ident = evaluate(tiny_hooked, identity_sae(tiny_hooked.d_model), hook, heldout, max_norm=median)
    zero = evaluate(tiny_hooked, zero_sae(tiny_hooked.d_model), hook, heldout, max_norm=median)
    full = evaluate(tiny_hooked, zero_sae(tiny_hooked.d_model), hook, heldout)
    assert ident.n_sinks > 0.3 * ident.n_tokens and ident.n_sinks + ident.n_tokens == full.n_tokens
    assert ident.loss_recovered == pytest.approx(1.0, abs=1e-2) and ident.fvu_with_sinks < 1e-10
    assert zero.loss_recovered == 0.0 and zero.ce_zero != full.ce_zero   # fewer positions zeroed


def test_trained_sae_is_seeded_beats_the_mean_and_is_stored_in_the_library_format(tiny_sae, tiny_hooked, tiny_corpus,
                                                                                  corpus_roots, real_data_dir):
    aid, r = tiny_sae
    assert r.n_latents == 4 * tiny_hooked.d_model and r.k == 8 and r.steps > 10
    c = ActivationStore(Path(tiny_corpus.path).parent).open(tiny_corpus.corpus_id)
    kept = sum(int(keep_rows(a["pos"], a["blocks.1.hook_resid_post"], True, r.meta.params["max_norm"]).sum())
               for _, a in c.iter_shards(["pos", "blocks.1.hook_resid_post"]))
    assert r.meta.params["max_norm"] > 0 and kept > tiny_corpus.n_tokens - 2 * tiny_corpus.n_docs
    assert r.train_tokens == 3 * kept   # 3 epochs; position 0 and sink tokens left out
    ev = r.evaluation
    assert 0 < ev["fvu"] < 0.9 and ev["l0"] == pytest.approx(8.0, abs=0.01)
    assert ev["dead"] + (r.frequency > 0).sum() == r.n_latents
    stored = artifacts.load(aid, corpus_roots[1])
    sp = sparsify()
    from_disk = sp.SparseCoder.load_from_disk(stored.meta.path / "sae")   # the library's own loader
    for name, p in r.sae().state_dict().items():
        assert torch.equal(p, from_disk.state_dict()[name])
    assert stored.meta.params["library"].startswith("eai-sparsify")
    again = train(tiny_hooked, layer=1, corpus=tiny_corpus.corpus_id, expansion=4, k=8, epochs=3, batch_tokens=256,
                  eval_tokens=0, activations=corpus_roots[0], data_dir=real_data_dir, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(load_weights(again.weights).parameters(), r.sae().parameters()))


def test_feature_explanations_of_the_sae(tiny_sae, tiny_hooked, corpus_roots):
    from workbench.interp import features

    aid, r = tiny_sae
    f = features.run(tiny_hooked, sae=aid, top=3, window=3, artifacts=corpus_roots[1], activations=corpus_roots[0])
    assert len(f.stats) == r.n_latents
    # each scanned token has exactly k latents in its top k (all positive after training), so densities sum to ~k
    assert f.stats["density"].sum() == pytest.approx(8.0, abs=0.05)
    assert (f.stats.loc[f.stats["n_fired"] > 0, "max"] > 0).all()
    assert (f.contexts["pos"] > 0).all()   # position 0 is left out, as in training
    alive = f.stats[f.stats["n_fired"] > 0]["unit"].iloc[0]
    assert f.hist[alive].sum() == f.stats["n_fired"].iloc[alive]
    coder = r.sae()
    w_u = tiny_hooked.hf.get_output_embeddings().weight.detach()
    eff = (coder.W_dec[alive] * tiny_hooked.hf.get_decoder().norm.weight.detach()) @ w_u.T
    top = f.logits[(f.logits["unit"] == alive) & (f.logits["sign"] == "promote")].sort_values("rank")
    assert top["token_id"].tolist() == eff.topk(10).indices.tolist()
    aid_f = artifacts.save(f, corpus_roots[1])
    assert artifacts.load(aid_f, corpus_roots[1]).contexts.shape == f.contexts.shape


def test_sae_cli_train_and_eval(tiny_model_dir, tiny_corpus, corpus_roots, real_data_dir, tmp_path, capsys):
    base = ["--model", f"hf:{tiny_model_dir}", "--artifacts", str(tmp_path / "arts")]
    rc = main(["interp", "sae", "train", *base, "--layer", "0", "--site", "resid_post", "--expansion", "2", "--k", "4",
               "--activations", str(corpus_roots[0]), "--eval-tokens", "0", "--no-progress", "--quiet"])
    aid = capsys.readouterr().out.strip()
    assert rc == 0 and aid.startswith("sae-")
    rc = main(["interp", "sae", "eval", *base, "--sae", aid, "--tokens", "200", "--data-dir", str(real_data_dir)])
    out = capsys.readouterr()
    assert rc == 0 and "loss recovered" in out.err
    r = artifacts.load(out.out.strip(), tmp_path / "arts")
    assert r.metrics["n_tokens"] > 0 and len(r.frequency) == 2 * 32


@pytest.fixture(scope="module")
def other_kind(tiny_corpus, tmp_path_factory):
    """An artifact root holding one artifact that is not an SAE (the corpus' `activations` record)."""
    root = tmp_path_factory.mktemp("arts-other")
    return root, artifacts.save(tiny_corpus, root)


@pytest.mark.parametrize("argv,message", [
    (["sae", "train", "--layer", "0", "--site", "mlp_outt"], "unknown activation site"),
    (["sae", "train", "--layer", "0", "--site", "attn_out"], "no complete activation corpus"),
    (["sae", "train", "--layer", "9"], "layer 9 is out of range"),
    (["sae", "eval", "--sae", "nope"], "no artifact nope"),
    (["features", "--sae", "{other}"], "not an SAE"),
])
def test_sae_bad_input_is_one_line_exit_2(argv, message, tiny_model_dir, corpus_roots, other_kind, capsys):
    root, other = other_kind
    argv = [a.format(other=other) for a in argv]
    rc = main(["interp", *argv, "--model", f"hf:{tiny_model_dir}", "--artifacts", str(root),
               *(["--activations", str(corpus_roots[0])] if argv[0] != "sae" or argv[1] == "train" else [])])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("workbench: error:")]
    assert rc == 2 and len(lines) == 1 and message in lines[0], err


@pytest.mark.slow
def test_smollm2_spliced_loss_ends(smol_hooked, real_data_dir):
    data = heldout_batches(smol_hooked, tokens=120, max_len=40, data_dir=real_data_dir)
    hook = "blocks.15.hook_resid_post"
    ident = evaluate(smol_hooked, identity_sae(smol_hooked.d_model), hook, data)
    zero = evaluate(smol_hooked, zero_sae(smol_hooked.d_model), hook, data)
    assert ident.ce_zero - ident.ce_clean > 1.0   # zero-ablating the residual stream at layer 15 wrecks the model
    assert ident.loss_recovered == pytest.approx(1.0, abs=1e-3) and ident.fvu < 1e-6
    assert zero.loss_recovered == 0.0


def test_library_files_are_checked_like_every_artifact_file(tiny_sae, corpus_roots, tmp_path):
    import shutil

    from workbench.store.artifacts import ArtifactError, validate_blob_path

    for bad in ("../x", "/etc/passwd", "sae/.hidden", "manifest.json", "t.parquet", ""):
        with pytest.raises(ArtifactError):
            validate_blob_path(bad)
    aid, _ = tiny_sae
    shutil.copytree(corpus_roots[1] / aid, tmp_path / aid)
    weights = tmp_path / aid / "sae" / "sae.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sae/sae.safetensors does not match"):
        artifacts.load(aid, tmp_path)
