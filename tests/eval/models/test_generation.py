"""Continuous-batching generation against lm-eval's own HFLM loop on the same model and requests."""
from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from workbench.eval.models import load_model
from workbench.eval.models.generation import ContinuousBatcher, GenRequest, _Lookup, supports

PROMPTS = ["The quick brown fox", "Question: What do plants need?\nAnswer:", "def add(a, b):\n",
           "Which organ pumps blood? The heart", "1234567890", "True, False. True", "#### 42\n"]


def _requests(prompts, kwargs):
    return [Instance("generate_until", {}, (p, dict(kwargs)), i) for i, p in enumerate(prompts)]


@pytest.fixture(scope="module")
def stock(tiny_model_dir):
    # batch_size=1: each request runs alone until its own stop, the reference any batching must reproduce
    return HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("kwargs", [
    {"until": ["\n\n", "Question:"], "max_gen_toks": 40, "do_sample": False},
    {"until": ["fox", " A"], "max_gen_toks": 17, "do_sample": False, "temperature": 0.0},
    {"until": ["(", "def"], "max_gen_toks": 64},
], ids=["newlines", "words", "code"])
def test_greedy_outputs_equal_hflm(tiny_model_dir, stock, batch_size, kwargs):
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=batch_size)
    prompts = PROMPTS * 2  # more requests than slots: later ones take the slots of finished ones
    assert ours.generate_until(_requests(prompts, kwargs), disable_tqdm=True) == \
        stock.generate_until(_requests(prompts, kwargs), disable_tqdm=True)


def test_greedy_requests_of_several_tasks_share_one_batch_and_keep_their_own_stops(tiny_model_dir, stock, monkeypatch):
    """Requests with different stop strings and token limits (a run's tasks, handed over together) run
    as one continuous batch, each stopping on its own terms: outputs equal HFLM's per task."""
    settings = [{"until": ["\n\n", "Question:"], "max_gen_toks": 40, "do_sample": False},
                {"until": ["fox", " A"], "max_gen_toks": 17, "temperature": 0.0},
                {"until": ["(", "def"], "max_gen_toks": 64}]
    mixed = [Instance("generate_until", {}, (p, dict(settings[i % 3])), i) for i, p in enumerate(PROMPTS * 2)]
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=4)
    batchers = []

    class Counting(ContinuousBatcher):
        def run(self, requests, on_done=None):
            batchers.append(len(requests))
            return super().run(requests, on_done)

    monkeypatch.setattr("workbench.eval.models.hf.ContinuousBatcher", Counting)
    got = ours.generate_until(mixed, disable_tqdm=True)
    assert batchers == [len(mixed)]
    assert got == stock.generate_until(mixed, disable_tqdm=True)


def test_sampling_is_seeded_per_request_not_per_batch(tiny_model_dir):
    kwargs = {"until": ["\n\n"], "max_gen_toks": 24, "do_sample": True, "temperature": 0.8, "top_p": 0.95}
    prompts = PROMPTS + PROMPTS[:2]  # a prompt repeated (as `repeats` clones it) draws a different sample
    a = load_model(f"hf:{tiny_model_dir}", batch_size=1, seed=7)
    b = load_model(f"hf:{tiny_model_dir}", batch_size=4, seed=7)
    c = load_model(f"hf:{tiny_model_dir}", batch_size=4, seed=8)
    out_a = a.generate_until(_requests(prompts, kwargs), disable_tqdm=True)
    assert out_a == b.generate_until(_requests(prompts, kwargs), disable_tqdm=True)
    assert out_a == a.generate_until(_requests(prompts, kwargs), disable_tqdm=True)
    assert out_a != c.generate_until(_requests(prompts, kwargs), disable_tqdm=True)
    assert out_a[0] != out_a[len(PROMPTS)] or out_a[1] != out_a[len(PROMPTS) + 1]


def test_a_finished_sequence_frees_its_slot_at_once(tiny_model_dir):
    lm = load_model(f"hf:{tiny_model_dir}")
    toks = lm.tok_encode("The quick brown fox")
    batcher = ContinuousBatcher(lm.model, max_batch=2, eos_ids=[], stop=lambda _: False, draft_tokens=0)
    budgets = [2, 10, 3, 3]
    out = batcher.run([GenRequest(list(toks), n) for n in budgets])
    assert [len(o) for o in out] == budgets
    # r1 makes its 10 tokens in 10 forwards; beside it r0 leaves after forward 2, r2 is prefilled in forward 3
    # (riding on r1's decoding) and leaves after 5, r3 likewise in 6-8. A fixed batch of 2 would take 10 + 3.
    assert batcher.forwards == 10 and batcher.prefills == 4
    greedy = [ContinuousBatcher(lm.model, max_batch=1, eos_ids=[], stop=lambda _: False, draft_tokens=0).run(
        [GenRequest(list(toks), n)])[0] for n in budgets]
    assert out == greedy  # same tokens alone or batched


def test_lookup_drafts_the_continuation_of_the_latest_earlier_occurrence():
    lk = _Lookup([5, 6, 7, 8, 1, 2, 5, 6, 9], max_len=8)
    lk.append(5)
    lk.append(6)
    assert lk.match(3) == [9, 5, 6]     # "5 6" last seen followed by 9 (not by the older "7 8")
    lk.append(7)
    assert lk.match(4) == [8, 1, 2, 5]  # the 3-gram "5 6 7" matches first
    assert _Lookup([1, 2, 3], max_len=8).match(2) == [] and lk.match(0) == []


def test_lookup_stops_drafting_while_its_drafts_are_wrong_and_resumes_when_right():
    lk = _Lookup([1, 2, 3, 1, 2], max_len=8)
    assert lk.draft(8) == [3, 1, 2]
    for _ in range(3):  # the model picks something else: the first draft is fed and rejected, then not fed
        lk.learn(lk.draft(8), 0, first_pick=99)
    assert lk.draft(8) == [] and lk.pending == [3, 1, 2]  # not fed, still checked against the pick
    fed = []
    for _ in range(4):  # the model now picks what the draft says
        d = lk.draft(8)
        fed.append(d)
        lk.learn(d, len(d), first_pick=3)
    assert fed[0] == [] and fed[-1] == [3, 1, 2]  # fed again
@pytest.mark.parametrize("max_batch", [1, 3])
def test_drafts_keep_greedy_tokens_and_save_steps(tiny_model_dir, max_batch):
    lm = load_model(f"hf:{tiny_model_dir}")
    # a random tiny model repeats itself: its own output is a good source of drafts
    prompts = [lm.tok_encode(p) for p in PROMPTS]
    reqs = [GenRequest(list(p), 48) for p in prompts]
    plain = ContinuousBatcher(lm.model, max_batch=max_batch, eos_ids=[], stop=lambda _: False, draft_tokens=0)
    drafted = ContinuousBatcher(lm.model, max_batch=max_batch, eos_ids=[], stop=lambda _: False, draft_tokens=8)
    assert drafted.run(reqs) == plain.run(reqs)
    assert drafted.accepted > 0 and drafted.forwards < plain.forwards


def test_rejected_drafts_leave_no_trace(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(_Lookup, "MIN_RATE", 0.0)  # draft whenever there is a match, right or wrong
    lm = load_model(f"hf:{tiny_model_dir}")
    match, vocab = _Lookup.match, lm.model.config.vocab_size
    calls = iter(range(10**6))

    def half_wrong(self, k):  # the last token of every other draft made wrong: its key must never be attended to
        d = match(self, k)
        return [*d[:-1], (d[-1] + 1) % vocab] if d and next(calls) % 2 else d

    monkeypatch.setattr(_Lookup, "match", half_wrong)
    reqs = [GenRequest(lm.tok_encode(p * 3), 40) for p in PROMPTS]
    ref = ContinuousBatcher(lm.model, max_batch=4, eos_ids=[], stop=lambda _: False, draft_tokens=0).run(reqs)
    eager = ContinuousBatcher(lm.model, max_batch=4, eos_ids=[], stop=lambda _: False, draft_tokens=8, draft_budget=64)
    assert eager.run(reqs) == ref and eager.drafted > eager.accepted > 0


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_prompts_prefilled_in_chunks_beside_decoding_rows_give_the_same_tokens(tiny_model_dir, chunk):
    lm = load_model(f"hf:{tiny_model_dir}")
    reqs = [GenRequest(lm.tok_encode(p * 2), n) for p, n in zip(PROMPTS, (12, 3, 20, 5, 9, 1, 16), strict=True)]
    whole = ContinuousBatcher(lm.model, max_batch=1, eos_ids=[], stop=lambda _: False, draft_tokens=0)
    chunked = ContinuousBatcher(lm.model, max_batch=3, eos_ids=[], stop=lambda _: False, prefill_chunk=chunk)
    assert chunked.run(reqs) == whole.run(reqs)
    assert chunked.prefills > len(reqs)  # prompts did go in several chunks


def _tiny(kind: str, path):
    """A random 2-layer model with a sliding window of 8 tokens: Mistral (every layer), Gemma 3 (one of two)."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, MistralConfig

    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=512, sliding_window=8,
                  attn_implementation="sdpa")
    config = (MistralConfig(**common) if kind == "mistral" else
              Gemma3TextConfig(**common, layer_types=["sliding_attention", "full_attention"]))
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("kind", ["mistral", "gemma3"])
def test_sliding_window_models_generate_as_model_generate(kind, tmp_path):
    model = _tiny(kind, tmp_path)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 64, (n,), generator=g).tolist() for n in (5, 30, 13, 21)]  # most longer than the window
    ref = []
    for p in prompts:
        with torch.inference_mode():
            seq = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                 max_new_tokens=24, min_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
        ref.append(seq[0, len(p):].tolist())
    batcher = ContinuousBatcher(model, max_batch=3, eos_ids=[], prefill_chunk=6)
    assert batcher.run([GenRequest(p, 24) for p in prompts]) == ref


def test_shared_prefix_is_prefilled_once(tiny_model_dir):
    lm = load_model(f"hf:{tiny_model_dir}")
    preamble = lm.tok_encode("The quick brown fox jumps over the lazy dog. " * 6)
    reqs = [GenRequest(preamble + lm.tok_encode(q), 6) for q in (" Which organ", " What do plants", " True")]
    shared = ContinuousBatcher(lm.model, max_batch=2, eos_ids=[], stop=lambda _: False, min_shared_prefix=32)
    seen = []
    hook = lm.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].shape), with_kwargs=True)
    out = shared.run(reqs)
    hook.remove()
    assert seen[0] == (1, len(preamble)) and all(s[1] < len(preamble) for s in seen[1:])
    alone = ContinuousBatcher(lm.model, max_batch=2, eos_ids=[], stop=lambda _: False, min_shared_prefix=10**6)
    assert out == alone.run(reqs)


def test_unsupported_logits_processors_fall_back_to_hflm(tiny_model_dir, stock):
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=4)
    kwargs = {"until": ["\n\n"], "max_gen_toks": 20, "do_sample": False, "repetition_penalty": 1.3}
    assert ours._sampling_setup({k: v for k, v in kwargs.items() if k not in ("until", "max_gen_toks")}) is None
    assert ours.generate_until(_requests(PROMPTS, kwargs), disable_tqdm=True) == \
        stock.generate_until(_requests(PROMPTS, kwargs), disable_tqdm=True)


# ---- real model, real task prompts ------------------------------------------------------------------
def _task_requests(name: str, n: int, max_gen_toks: int):
    from workbench.eval import tasks as T

    built = T.build(T.resolve([name])[0])
    built.task.build_all_requests(samples=T.select_docs(name, len(built.task.eval_docs), limit=None, n=n, seed=1234),
                                  rank=0, world_size=1)
    insts = sorted(built.task.instances, key=lambda x: x.doc_id)
    for inst in insts:  # the task's own stop sequences; the budget capped to keep the test short
        inst.arguments = (inst.arguments[0], dict(inst.arguments[1], max_gen_toks=max_gen_toks))
    return insts


@pytest.mark.slow
@pytest.mark.parametrize("task", ["gsm8k", "humaneval"])
def test_smollm2_greedy_generations_are_token_identical_to_hflm(task, smollm2_checkpoint, real_data_dir):
    torch.manual_seed(0)
    insts = _task_requests(task, 4, 64)
    stock = HFLM(pretrained=str(smollm2_checkpoint), dtype="float32", batch_size=1, device="cpu")
    ref = stock.generate_until(insts, disable_tqdm=True)
    ours = load_model("smollm2-135m", batch_size=4)
    got = ours.generate_until(insts, disable_tqdm=True)
    assert [ours.tok_encode(g) for g in got] == [ours.tok_encode(r) for r in ref]
    assert got == ref and any(len(r) > 20 for r in ref)


def test_models_with_attention_the_packed_forward_cannot_run_are_refused(tiny_model_dir):
    from transformers import AutoModelForCausalLM, Gemma2Config

    assert supports(load_model(f"hf:{tiny_model_dir}").model)
    gemma2 = AutoModelForCausalLM.from_config(Gemma2Config(  # logit soft-capping inside attention
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, attn_implementation="eager"))
    assert not supports(gemma2)


@pytest.mark.slow
def test_gemma3_generations_past_its_sliding_window_are_token_identical_to_hflm(real_data_dir, gemma3_checkpoint):
    """Gemma 3's local layers attend within 512 positions; GSM8K's 5-shot prompts are about twice that."""
    insts = _task_requests("gsm8k", 3, 24)
    ours = load_model("gemma3-270m", batch_size=4)
    window = ours.model.config.get_text_config().sliding_window
    assert all(len(ours.tok_encode(i.args[0])) > window for i in insts)
    got = ours.generate_until(insts, disable_tqdm=True)
    stock = HFLM(pretrained=str(gemma3_checkpoint), dtype="float32",
                 batch_size=1, device="cpu")
    assert got == stock.generate_until(insts, disable_tqdm=True) and any(len(g) > 20 for g in got)


def test_single_token_sequences_are_batched_unless_one_is_much_longer():
    from workbench.eval.models.generation import _batched_singles, _Segment

    even = [_Segment(slot, slot, 1, 900 + slot) for slot in range(8)]
    assert _batched_singles(even) == even  # one call instead of eight
    short = [_Segment(slot, slot, 1, 100) for slot in range(7)]
    long = _Segment(7, 7, 1, 3000)
    assert _batched_singles([*short, long]) == short  # reading 3,000 positions in every slot would not pay
    assert _batched_singles([_Segment(5, 0, 1, 40)]) == []  # alone: no padding to slot 5 for nothing


def test_an_empty_prompt_is_refused_not_answered_from_another_row(tiny_model_dir):
    from workbench.errors import ModelError

    ours = load_model(f"hf:{tiny_model_dir}", batch_size=4)
    with pytest.raises(ModelError, match="encodes to no tokens"):
        ours.generate_until(_requests(["", "The quick"], {"until": ["\n"], "max_gen_toks": 5}), disable_tqdm=True)
    with pytest.raises(ValueError, match="empty prompt"):
        ContinuousBatcher(ours.model, max_batch=2, eos_ids=[]).run([GenRequest([], 3)])
