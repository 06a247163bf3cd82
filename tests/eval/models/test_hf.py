"""The hf backend's scoring core against lm-eval's own HFLM on the same model and requests."""
import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from workbench.eval.models import load_model
from workbench.eval.models.hf import _aligned_pieces


def _requests(pairs):
    return [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]


PAIRS = [
    ("Which organ pumps blood?\nAnswer:", " A"),
    ("Which organ pumps blood?\nAnswer:", " B"),
    ("Which organ pumps blood?\nAnswer:", " the heart and the lung"),
    ("Which organ pumps blood?\nAnswer:", " liver"),
    ("Question: What do plants need to make food?\nAnswer:", " Sunlight, water and air."),
    ("Question: What do plants need to make food?\nAnswer:", " sand"),
    ("short", " x"),
    ("The quick brown fox jumps over the lazy dog. " * 6, " The quick brown fox"),
    ("Trailing space context ", "continuation"),
    ("", "The quick brown fox"),
]


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_prefix_sharing_core_matches_stock_hflm(tiny_model_dir, batch_size):
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=batch_size)
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    got = ours.loglikelihood(_requests(PAIRS), disable_tqdm=True)
    ref = stock.loglikelihood(_requests(PAIRS), disable_tqdm=True)
    for (ll, greedy), (ll_ref, greedy_ref), pair in zip(got, ref, PAIRS):
        assert ll == pytest.approx(ll_ref, abs=1e-4), pair
        assert greedy == greedy_ref, pair


def test_model_info_identifies_the_checkpoint(tiny_model_dir):
    lm = load_model(f"hf:{tiny_model_dir}")
    assert lm.info.backend == "hf" and len(lm.info.sha256) == 64
    assert lm.info.architecture == "LlamaForCausalLM" and lm.info.dtype == "float32"


PREAMBLE = "The following are questions about organs.\n\n" + "Which organ pumps blood?\nAnswer: the heart\n\n" * 8
QUESTIONS = ("What do plants need?\nAnswer:", "Which organ is used for breathing?\nAnswer:", "Where is the tibia?\nAnswer:",
             "What is the largest organ?\nAnswer:", "What does the liver do?\nAnswer:")


def _pairs(questions):
    return [(PREAMBLE + q, c) for q in questions for c in (" A", " sunlight and water", " the leg")]


def test_shared_few_shot_prefix_is_run_once_and_scores_match(tiny_model_dir):
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    ours.PACK_MIN_RUN = 1  # pack after the preamble however few the items (by default: 8 or more)
    ours._vocab_head()  # its one-off check runs a forward of its own
    calls, packed = [], []
    ours.model.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(kwargs["input_ids"].shape), with_kwargs=True)
    ours.model.base_model.register_forward_pre_hook(
        lambda mod, args, kwargs: packed.append(kwargs["attention_mask"].shape)
        if kwargs.get("attention_mask") is not None and kwargs["attention_mask"].dim() == 4 else None, with_kwargs=True)
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    pairs = _pairs(QUESTIONS)
    got = ours.loglikelihood(_requests(pairs), disable_tqdm=True)
    ref = stock.loglikelihood(_requests(pairs), disable_tqdm=True)
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, ref):
        assert ll == pytest.approx(ll_ref, abs=1e-4) and greedy == greedy_ref
    block = ours.PREFIX_BLOCK
    n_pre = len(ours.tok_encode(PREAMBLE)) // block
    assert n_pre >= 2
    # The preamble's whole blocks ran once, in aligned pieces of 8/4/2/1 blocks, as batches of one; the
    # questions after it, packed in one row that sees the preamble's KV (mask: row tokens x (preamble +
    # row tokens)).
    assert calls == [(1, size * block) for _, size in _aligned_pieces(n_pre, ours.PREFIX_GROUP)]
    assert len(packed) == 1 and packed[0][2] + n_pre * block == packed[0][3]
    # ... and a later call with the same preamble reuses the blocks: no prefix forward at all.
    calls.clear()
    again = ours.loglikelihood(_requests(_pairs(QUESTIONS[:2])), disable_tqdm=True)
    assert calls == [] and len(packed) == 2
    assert [ll for ll, _ in again] == pytest.approx([ll for ll, _ in got[:6]], abs=1e-5)
    assert [g for _, g in again] == [g for _, g in got[:6]]


def test_short_contexts_without_a_preamble_are_scored_packed(tiny_model_dir):
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=8)
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    seen = []
    ours.model.base_model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape), with_kwargs=True)
    pairs = [(q, c) for q in QUESTIONS for c in (" A", " sunlight and water", " the leg of the table")]
    got = ours.loglikelihood(_requests(pairs), disable_tqdm=True)
    assert seen[-1][0] == 1 and len(seen) <= 3  # the head check, then every item in one packed row
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, stock.loglikelihood(_requests(pairs), disable_tqdm=True)):
        assert ll == pytest.approx(ll_ref, abs=1e-4) and greedy == greedy_ref


def test_kept_prefix_does_not_make_scores_depend_on_call_order(tiny_model_dir):
    first, second = _pairs(QUESTIONS[:3]), _pairs(QUESTIONS[3:])
    a = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    b = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    a1, a2 = a.loglikelihood(_requests(first), disable_tqdm=True), a.loglikelihood(_requests(second), disable_tqdm=True)
    b2, b1 = b.loglikelihood(_requests(second), disable_tqdm=True), b.loglikelihood(_requests(first), disable_tqdm=True)
    assert (a1, a2) == (b1, b2)  # exactly: a block's KV depends only on its tokens


def test_a_long_preamble_runs_whole_groups_of_blocks_at_once_and_scores_do_not_depend_on_order(tiny_model_dir):
    """A preamble of more than one aligned group of 8 blocks: each group in one forward, the rest in aligned
    pieces of 4, 2 and 1 blocks; scores equal HFLM's, and a call's scores do not depend on which calls
    (with longer or shorter shared prefixes) came first."""
    long = "The following are questions about organs.\n\n" + "Which organ pumps blood?\nAnswer: the heart\n\n" * 40
    ours = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    ours._vocab_head()
    block, span = ours.PREFIX_BLOCK, ours.PREFIX_BLOCK * ours.PREFIX_GROUP
    n = len(ours.tok_encode(long))
    assert n > span + 2 * block
    calls = []
    ours.model.register_forward_pre_hook(lambda mod, args, kw: calls.append(kw["input_ids"].shape), with_kwargs=True)
    pairs = [(long + q, c) for q in QUESTIONS[:3] for c in (" A", " the leg")]
    got = ours.loglikelihood(_requests(pairs), disable_tqdm=True)
    shared = n // block * block  # the questions add no whole block to what the three contexts share
    prefix_calls = [c for c in calls if c[0] == 1 and c[1] % block == 0 and c[1] <= span]
    assert shared // span >= 1 and shared % span >= block
    pieces = _aligned_pieces(shared // block, ours.PREFIX_GROUP)
    assert [size for _, size in pieces][:shared // span] == [ours.PREFIX_GROUP] * (shared // span)
    assert prefix_calls == [(1, size * block) for _, size in pieces]
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, stock.loglikelihood(_requests(pairs), disable_tqdm=True)):
        assert ll == pytest.approx(ll_ref, abs=1e-4) and greedy == greedy_ref
    # Order: a call sharing a shorter prefix (inside the first group) before or after the long one.
    short = [(long[:200] + q, c) for q in QUESTIONS[:3] for c in (" A", " the leg")]
    a = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    b = load_model(f"hf:{tiny_model_dir}", batch_size=3)
    a_long, a_short = a.loglikelihood(_requests(pairs), disable_tqdm=True), a.loglikelihood(_requests(short), disable_tqdm=True)
    b_short, b_long = b.loglikelihood(_requests(short), disable_tqdm=True), b.loglikelihood(_requests(pairs), disable_tqdm=True)
    assert (a_long, a_short) == (b_long, b_short) and a_long == got


def _rolling(texts):
    return [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]


DOCS = ["The quick brown fox jumps over the lazy dog.", "def add(a, b):\n    return a + b\n#### 42",
        "Which organ pumps blood? The heart, the lung, the kidney and the liver are organs. " * 12, "x",
        "Sunlight, water and air. " * 40]


@pytest.mark.parametrize("batch_tokens, max_length", [(4096, None), (64, None), (4096, 48), (50, 17)])
def test_rolling_loglikelihood_matches_stock_hflm(tiny_model_dir, batch_tokens, max_length):
    """Same windows (short contexts force several per document), batched or not: lm-eval's numbers."""
    ours = load_model(f"hf:{tiny_model_dir}", batch_tokens=batch_tokens)
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    if max_length:
        ours._max_length = stock._max_length = max_length
    got = ours.loglikelihood_rolling(_rolling(DOCS), disable_tqdm=True)
    ref = stock.loglikelihood_rolling(_rolling(DOCS), disable_tqdm=True)
    assert ours._vocab_head() is not None  # the sliced vocabulary projection, not the fallback
    for ll, ll_ref, doc in zip(got, ref, DOCS):
        assert ll == pytest.approx(ll_ref, rel=1e-5, abs=1e-4), doc[:30]


def test_rolling_falls_back_to_the_models_forward_when_its_head_is_unusual(tiny_model_dir):
    ours = load_model(f"hf:{tiny_model_dir}")
    stock = HFLM(pretrained=str(tiny_model_dir), dtype="float32", batch_size=1, device="cpu")
    ref = stock.loglikelihood_rolling(_rolling(DOCS), disable_tqdm=True)
    ours._head = None  # as if the check against the model's own logits had failed
    got = ours.loglikelihood_rolling(_rolling(DOCS), disable_tqdm=True)
    assert got == pytest.approx(ref, rel=1e-5, abs=1e-4)


@pytest.mark.slow
def test_gemma3_scores_past_its_sliding_window_match_stock_hflm(real_data_dir, gemma3_checkpoint):
    """Gemma 3 attends within 512 positions on most layers; 5-shot MMLU contexts are longer, so a padded
    batch would hide real tokens from that window (it did: one answer in ten changed)."""
    from workbench.eval import tasks as T

    built = T.build(T.resolve(["mmlu_high_school_statistics"])[0])
    built.task.build_all_requests(samples=[0, 1, 2], rank=0, world_size=1)
    insts = sorted(built.task.instances, key=lambda x: (x.doc_id, x.idx))
    ours = load_model("gemma3-270m", batch_size=8)
    window = ours.model.config.get_text_config().sliding_window
    assert all(len(ours.tok_encode(i.args[0])) > window for i in insts)
    got = ours.loglikelihood(insts, disable_tqdm=True)
    stock = HFLM(pretrained=str(gemma3_checkpoint), dtype="float32",
                 batch_size=1, device="cpu")
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, stock.loglikelihood(insts, disable_tqdm=True), strict=True):
        assert ll == pytest.approx(ll_ref, abs=1e-4) and greedy == greedy_ref
