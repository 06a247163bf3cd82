"""The hook layer: parity with raw HF logits, names, context length, single-token targets."""
from __future__ import annotations

import pytest
import torch

from workbench.interp.errors import PromptTooLongError, TokenError, UnknownHookError

PROMPTS = ["The quick brown fox jumps over the lazy dog.", "Which organ pumps blood? The heart"]
# Bridge (eager attention, same HF modules) vs a separately loaded raw HF model with its default
# attention kernel (sdpa): the only difference is the attention kernel's summation order.
LOGIT_ATOL = 1e-3


def _raw_hf(checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()


def _max_dlogit(hooked, raw) -> float:
    worst = 0.0
    with torch.no_grad():
        for p in PROMPTS:
            ids = hooked.tokenize(p)
            worst = max(worst, float((hooked.logits(ids) - raw(ids).logits).abs().max()))
    return worst


def test_tiny_parity_with_raw_hf(tiny_hooked, tiny_model_dir):
    assert _max_dlogit(tiny_hooked, _raw_hf(tiny_model_dir)) < LOGIT_ATOL


@pytest.mark.slow
def test_smollm2_parity_with_raw_hf(smol_hooked):
    d = _max_dlogit(smol_hooked, _raw_hf(smol_hooked.ref.checkpoint))
    print(f"SmolLM2 max |dlogit| hooked vs raw HF: {d:.3g}")
    assert d < LOGIT_ATOL


def test_tokenize_matches_hf_tokenizer_without_extra_bos(tiny_hooked):
    ids = tiny_hooked.tokenize("The quick brown fox")
    assert ids[0].tolist() == tiny_hooked.tokenizer("The quick brown fox")["input_ids"]


def test_cache_holds_only_requested_names_and_matches_full_run(tiny_hooked):
    ids = tiny_hooked.tokenize(PROMPTS[0])
    names = ["blocks.0.hook_resid_post", "blocks.0.attn.hook_pattern"]
    logits, cache = tiny_hooked.run_with_cache(ids, names)
    assert set(cache) == set(names) and logits is not None
    short, early = tiny_hooked.run_with_cache(ids, names, need_logits=False)
    assert short is None  # stopped after block 0
    for n in names:
        torch.testing.assert_close(early[n], cache[n], rtol=0, atol=0)
    pattern = cache["blocks.0.attn.hook_pattern"][0]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    assert float(pattern.triu(1).abs().max()) == 0.0  # causal


def test_full_cache_equals_the_bridges_own_cache(tiny_hooked):
    """`run_with_cache(ids)` (every name) holds exactly the bridge's full cache: same names, same values."""
    import warnings

    ids = tiny_hooked.tokenize(PROMPTS[1])
    with torch.no_grad():
        logits, cache = tiny_hooked.run_with_cache(ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_logits, ref = tiny_hooked.bridge.run_with_cache(ids, return_cache_object=False)
    assert set(cache) == set(ref) and len(cache) > 100
    assert set(cache) <= set(tiny_hooked.hook_names)
    for name, value in ref.items():
        assert cache[name].shape == value.shape, name
        torch.testing.assert_close(cache[name], value, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0)
    # A few names are a subset of the full cache, value for value.
    names = ["blocks.1.attn.hook_z", "blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"]
    _, some = tiny_hooked.run_with_cache(ids, names)
    assert list(some) == names
    for n in names:
        torch.testing.assert_close(some[n], cache[n], rtol=0, atol=0)


def test_switched_off_hook_is_refused(tiny_hooked):
    ids = tiny_hooked.tokenize("The quick")
    assert "blocks.0.attn.hook_result" in tiny_hooked.hook_names
    with pytest.raises(UnknownHookError, match="did not fire"):
        tiny_hooked.run_with_cache(ids, ["blocks.0.attn.hook_result"])


def test_resuming_at_a_block_reproduces_the_forward(tiny_hooked):
    """Blocks L.. run on block L's recorded input (batch of 3) give the model's logits, for every L."""
    ids = tiny_hooked.tokenize(PROMPTS[0])
    with torch.no_grad():
        ref = tiny_hooked.logits(ids)
        inputs = tiny_hooked.block_inputs(ids)
        _, cache = tiny_hooked.run_with_cache(ids, [f"blocks.{l}.hook_resid_pre" for l in range(tiny_hooked.n_layers)])
        for start in range(tiny_hooked.n_layers):
            torch.testing.assert_close(inputs[start].resid, cache[f"blocks.{start}.hook_resid_pre"], rtol=0, atol=0)
            resid = inputs[start].resid.expand(3, -1, -1)
            for layer in range(start, tiny_hooked.n_layers):
                resid = tiny_hooked.run_block(layer, resid, inputs[layer])
            torch.testing.assert_close(tiny_hooked.unembed(resid), ref.expand(3, -1, -1), rtol=0, atol=1e-5)


def test_unknown_hook_name_lists_close_matches(tiny_hooked):
    ids = tiny_hooked.tokenize("The quick")
    with pytest.raises(UnknownHookError, match="blocks.0.hook_resid_pre"):
        tiny_hooked.run_with_cache(ids, ["blocks.0.hook_resid_pree"])
    with pytest.raises(UnknownHookError, match="blocks.7"):
        tiny_hooked.run_with_hooks(ids, [("blocks.7.hook_mlp_out", lambda t, hook: t)])


def test_prompt_longer_than_context(tiny_hooked):
    n = tiny_hooked.n_ctx
    with pytest.raises(PromptTooLongError, match=f"at most {n}"):
        tiny_hooked.tokenize("The quick brown fox. " * n)


def test_target_not_a_single_vocabulary_token(tiny_hooked):
    assert isinstance(tiny_hooked.single_token(" the"), int)
    with pytest.raises(TokenError, match="not a single token"):
        tiny_hooked.single_token(" xylophone quartet")
    with pytest.raises(TokenError):
        tiny_hooked.single_token("")


def test_backend_without_torch_weights_is_refused():
    from workbench.errors import ModelError
    from workbench.interp.hooks import resolve

    with pytest.raises(ModelError, match="torch weights"):
        resolve("openai:http://localhost:1")


def test_quantized_specs_map_to_their_unquantized_weights(tiny_model_dir):
    """int8:/llamacpp: quantize float weights at load: the hooks use those weights unquantized, and say so."""
    from workbench.errors import ModelError
    from workbench.interp.hooks import torch_weights

    assert torch_weights(f"hf:{tiny_model_dir}") == (f"hf:{tiny_model_dir}", None)
    assert torch_weights("smollm2-135m") == ("smollm2-135m", None)
    spec, note = torch_weights(f"int8:{tiny_model_dir}")
    assert spec == f"hf:{tiny_model_dir}" and "unquantized" in note and f"int8:{tiny_model_dir}" in note
    assert torch_weights("int8:smollm2-135m")[0] == "gguf:smollm2-135m"
    assert torch_weights("llamacpp:smollm2-135m")[0] == "gguf:smollm2-135m"
    with pytest.raises(ModelError, match="torch weights"):
        torch_weights("openai:http://localhost:1")


@pytest.mark.slow
def test_gemma3_parity_with_raw_hf_and_lens(gemma_hooked):
    from workbench.interp.logit_lens import layer_logits

    d = _max_dlogit(gemma_hooked, _raw_hf(gemma_hooked.ref.checkpoint))
    print(f"Gemma 3 270M max |dlogit| hooked vs raw HF: {d:.3g}")
    assert d < LOGIT_ATOL
    ids = gemma_hooked.tokenize(PROMPTS[1])
    assert ids[0, 0].item() == gemma_hooked.tokenizer.bos_token_id  # Gemma's tokenizer adds <bos> itself
    with torch.no_grad():
        ref = gemma_hooked.logits(ids)[0, -1]
    torch.testing.assert_close(layer_logits(gemma_hooked, ids, [ids.shape[-1] - 1])[-1, 0], ref, rtol=0, atol=1e-3)
