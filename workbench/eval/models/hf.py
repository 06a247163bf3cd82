"""`hf:<dir>` - a local transformers checkpoint, run by lm-eval's HFLM with faster cores.

HFLM keeps lm-eval's tokenisation, chat templates, request grouping and post-processing. Its scoring
loop is replaced: each distinct context is run once (its KV cache shared by every choice), logits
are computed only at scored positions, and contexts are batched by length. Its generation loop is
replaced by continuous batching (`generation.py`), with the same outputs for greedy decoding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from tqdm import tqdm

from workbench import settings
from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.base import ModelInfo, WorkbenchLM
from workbench.eval.models.generation import ContinuousBatcher, GenRequest, StopChecker, request_seed, supports
from workbench.eval.models.hashing import cached_sha256


def _dtype(name: str) -> torch.dtype:
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise ModelError(f"unsupported dtype {name!r}: use float32, bfloat16 or float16") from None


def set_threads() -> None:
    """Honour WORKBENCH_THREADS (default: torch's choice)."""
    n = settings.threads()
    if n:
        torch.set_num_threads(n)


class HFBackend(HFLM, WorkbenchLM):
    """lm-eval's HFLM with a prefix-sharing, scored-positions-only loglikelihood core."""

    def __init__(self, model, tokenizer, info: ModelInfo, batch_tokens: int = 4096, min_shared_prefix: int = 32,
                 seed: int = 1234, draft_tokens: int = 8, **kwargs: Any) -> None:
        kwargs.setdefault("batch_size", settings.BATCH_SIZE)
        super().__init__(pretrained=model, tokenizer=tokenizer, device=str(model.device), **kwargs)
        self.info = info
        self.batch_tokens = int(batch_tokens)
        self.min_shared_prefix = int(min_shared_prefix)
        self.seed = int(seed)  # sampling seed: each request's draw is seeded from it, its prompt and its repeat
        self.info.extra.setdefault("device", str(model.device))
        self.draft_tokens = int(draft_tokens)  # greedy generation's prompt-lookup drafts (0: none); tokens unchanged
        self.info.extra.setdefault("draft_tokens", self.draft_tokens)

    # HFLM's generate_until runs `model.generate` on fixed batches; this keeps its request handling
    # (gen kwargs normalisation, stop sequences + EOS, left truncation, decoding, stop-string cut)
    # and replaces the loop with continuous batching.
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(repr(sorted(req.args[1].items())), []).append(i)
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="generate_until", leave=False)
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        # Greedy requests share one continuous batch whatever their stop strings and token limits (a run's
        # tasks hand them over together); each sampling setting gets a batch of its own.
        batches: dict[int, tuple[Any, list[tuple[int, list[str]]], list[GenRequest]]] = {}
        for idx in groups.values():
            kwargs = normalize_gen_kwargs(requests[idx[0]].args[1], self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen = int(kwargs.pop("max_gen_toks"))
            setup = self._sampling_setup(kwargs)
            if (setup is None or self.think_end_token is not None or self.backend != "causal"
                    or not supports(self.model)):
                texts = HFLM.generate_until(self, [requests[i] for i in idx], disable_tqdm=True)
                for i, text in zip(idx, texts, strict=True):
                    results[i] = text
                pbar.update(len(idx))
                continue
            processors, sampled = setup
            key = 0 if processors is None and not sampled else id(idx)
            _, members, reqs = batches.setdefault(key, (processors, [], []))
            stop = StopChecker(until, lambda t: self.tok_decode(t, skip_special_tokens=False))
            seen: dict[str, int] = {}
            for i in idx:
                context = requests[i].args[0]
                tokens = self.tok_batch_encode([context], left_truncate_len=self.max_length - max_gen,
                                               truncation=self.truncation)[0][0]
                if not len(tokens):
                    raise ModelError(f"a generation request's prompt encodes to no tokens ({context!r}): "
                                     "there is nothing to condition on")
                occurrence = seen[context] = seen.get(context, -1) + 1  # repeats of one prompt draw differently
                members.append((i, until))
                reqs.append(GenRequest(tokens.tolist(), max_gen,
                                       request_seed(self.seed, context, occurrence) if sampled else None, stop))
        for processors, members, reqs in batches.values():
            batcher = ContinuousBatcher(self.model, max_batch=self._batch_size(), eos_ids=self._eos_ids(),
                                        processors=processors, min_shared_prefix=self.min_shared_prefix,
                                        draft_tokens=self.draft_tokens)
            out = batcher.run(reqs, on_done=lambda _: pbar.update(1))
            for (i, until), toks in zip(members, out, strict=True):
                text = postprocess_generated_text(self.tok_decode(toks), until, None)
                results[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        pbar.close()
        return results  # type: ignore[return-value]

    def _batch_size(self) -> int:
        return int(self.batch_size) if str(self.batch_size).isdigit() else settings.BATCH_SIZE

    def _eos_ids(self) -> list[int]:
        """The token ids `model.generate` stops a sequence on (the model's generation config)."""
        eos = self.model.generation_config.eos_token_id
        return [] if eos is None else [int(e) for e in (eos if isinstance(eos, list) else [eos])]

    # Logits processors that only look at the scores (not at the tokens so far) are applied here as
    # `model.generate` would build them; anything else (repetition penalties, forced or suppressed
    # tokens, beams) falls back to HFLM's own loop.
    _SCORE_ONLY = ("TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper")

    def _sampling_setup(self, kwargs: dict[str, Any]):
        """(logits processors or None, sampled?) as `model.generate(**kwargs)` would set up; None if unsupported."""
        kwargs = dict(kwargs)
        if kwargs.get("temperature") == 0.0 and not kwargs.get("do_sample"):
            kwargs.pop("temperature")  # as HFLM._model_generate: greedy without a temperature warning
        try:
            config, extra = self.model._prepare_generation_config(None, **kwargs)
            if extra or (config.num_beams or 1) != 1 or config.stop_strings is not None:
                return None
            procs = self.model._get_logits_processor(config, input_ids_seq_length=0, encoder_input_ids=None,
                                                     device=self.model.device, model_kwargs={})
        except (TypeError, ValueError, AttributeError):
            return None
        if any(type(p).__name__ not in self._SCORE_ONLY for p in procs):
            return None
        return (procs if len(procs) else None), bool(config.do_sample)

    # HFLM's default core computes log-softmax over the full vocabulary at every position of
    # every (context + choice) row. This one runs each context once and scores only what is asked.
    @torch.inference_mode()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        by_ctx: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, (_, ctx, cont) in enumerate(requests):
            if not cont or len(cont) > self.max_length:
                raise ValueError(f"continuation of {len(cont)} tokens does not fit the model")
            whole = (list(ctx) + list(cont))[-(self.max_length + 1):]
            by_ctx.setdefault(tuple(whole[: len(whole) - len(cont)]), []).append((i, list(cont)))

        # Lexicographic order puts contexts that share a few-shot preamble next to each other; within a run
        # of them, longest first, so a batch's rows need little padding after the prefix they share.
        contexts = _preamble_runs_by_length(sorted(by_ctx), self.min_shared_prefix)
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="loglikelihood", leave=False)
        # Contexts that share no preamble and fit a packed row go through one packed forward per batch.
        packable = self._packable(contexts, by_ctx)
        if packable:
            for batch in self._pack_rows(packable, by_ctx):
                self._score_packed(batch, by_ctx, results)
                pbar.update(sum(len(by_ctx[c]) for row in batch for c in row))
            done = set(packable)
            contexts = [c for c in contexts if c not in done]
        # Contexts that share a few-shot preamble: its KV once (kept blocks), their own tokens packed after it.
        rest = []
        for run, shared in self._preamble_runs(contexts, by_ctx):
            if not shared:
                rest.extend(run)
                continue
            for batch in self._pack_rows(run, by_ctx, shared=shared, per_batch=1):
                self._score_packed(batch, by_ctx, results, shared=shared)
                pbar.update(sum(len(by_ctx[c]) for row in batch for c in row))
        contexts = rest
        bs = self._batch_size()
        # A sliding-window model counts its window in cache columns: left padding inside a row's window
        # would hide real tokens from it, so a context longer than the window is scored alone.
        window = self._window()
        alone = (lambda ctx: len(ctx) > window) if window else (lambda ctx: False)
        useful = max(self.min_shared_prefix, self.PREFIX_BLOCK)  # a shared prefix worth running once
        start = 0
        while start < len(contexts):
            # A batch grows while its rows' own tokens (what is left after the prefix they share) fit.
            end, width, shared = start + 1, len(contexts[start]), len(contexts[start]) - 1
            while end < len(contexts) and end - start < bs and not alone(contexts[start]) and not alone(contexts[end]):
                s = min(shared, _common_prefix_len([contexts[start], contexts[end]]))
                if s < useful <= shared:  # it would cost the batch its preamble (another task's context)
                    break
                w = max(width, len(contexts[end]))
                if (end - start + 1) * (w - s + s % self.PREFIX_BLOCK) > self.batch_tokens:
                    break
                end, width, shared = end + 1, w, s
            batch = contexts[start:end]
            self._score_batch(batch, by_ctx, results)
            pbar.update(sum(len(by_ctx[c]) for c in batch))
            start = end
        pbar.close()
        for i, (req, _, _) in enumerate(requests):
            self.cache_hook.add_partial("loglikelihood", req, results[i])
        return results  # type: ignore[return-value]

    # ---- packed scoring ------------------------------------------------------------------------------
    # Short contexts without a shared preamble (0-shot multiple choice: ARC, MMLU-cloze, BIG-bench) are
    # scored packed: a row holds several items, each its context followed by every continuation's tokens
    # (the last one excepted), under a block mask where a continuation sees its context and itself
    # only, with positions restarting after the context. One forward scores them all: no padding
    # between items, no KV copies, the vocabulary projection only at scored positions.
    PACK_ROW = 256
    PACK_MIN_RUN = 8  # contexts sharing a preamble needed before they are packed after it

    def _window(self) -> int | None:
        """The model's sliding attention window (Gemma 3: 512 positions on most layers), if it has one."""
        return getattr(self.model.config.get_text_config(), "sliding_window", None)

    def _packable(self, contexts: list, by_ctx) -> list:
        """Contexts to score packed: those sharing no preamble with a neighbour, when the model allows."""
        cfg = self.model.config.get_text_config()
        # A sliding-window model's window counts positions: an item must fit it for the block mask to agree.
        limit = min(1024, self.max_length, self._window() or self.max_length)
        out = []
        for k, ctx in enumerate(contexts):
            near = [contexts[j] for j in (k - 1, k + 1) if 0 <= j < len(contexts)]
            if any(_common_prefix_len([ctx, n]) >= self.min_shared_prefix for n in near):
                continue
            if _packed_len(ctx, by_ctx[ctx]) <= limit:
                out.append(ctx)
        if not out or getattr(cfg, "_attn_implementation", None) != "sdpa" or self._vocab_head() is None:
            return []
        return out

    def _preamble_runs(self, contexts: list, by_ctx) -> list[tuple[list, int]]:
        """Consecutive contexts that share a preamble, with the whole blocks of it to run once (0 where the
        run is not packed: too short a preamble, too long an item, or a model that does not allow it)."""
        cfg = self.model.config.get_text_config()
        limit = min(self.max_length, self._window() or self.max_length)
        out = []
        for run in _runs(contexts, self.min_shared_prefix):
            shared = _common_prefix_len(run) if len(run) > 1 else 0
            shared -= shared % self.PREFIX_BLOCK
            fits = all(_packed_len(c, by_ctx[c]) <= limit and _packed_len(c, by_ctx[c]) - shared <= 4 * self.PACK_ROW
                       for c in run)
            # Measured on SmolLM2 MMLU 5-shot: packed rows beat padded batches by 30% on a whole subject,
            # but lose 10% on four items of a subject (the quick suite), so few-item runs stay batched.
            ok = shared >= max(self.min_shared_prefix, self.PREFIX_BLOCK) and fits and len(run) >= self.PACK_MIN_RUN
            if ok and (getattr(cfg, "_attn_implementation", None) != "sdpa" or self._vocab_head() is None):
                ok = False
            out.append((run, shared if ok else 0))
        return out

    def _pack_rows(self, contexts: list, by_ctx, shared: int = 0, per_batch: int | None = None) -> list[list[list]]:
        """Batches of rows of contexts (first fit, longest first); a batch holds at most `batch_tokens`
        (or `per_batch` rows). With `shared`, rows hold the contexts' tokens after that many."""
        size = lambda c: _packed_len(c, by_ctx[c]) - shared
        items = sorted(contexts, key=lambda c: -size(c))
        width = max(self.PACK_ROW, size(items[0]))
        rows: list[tuple[int, list]] = []
        for ctx in items:
            n = size(ctx)
            for k, (used, row) in enumerate(rows):
                if used + n <= width:
                    rows[k] = (used + n, row + [ctx])
                    break
            else:
                rows.append((n, [ctx]))
        per = per_batch or max(1, self.batch_tokens // width)
        return [[row for _, row in rows[i:i + per]] for i in range(0, len(rows), per)]

    def _score_packed(self, batch: list[list], by_ctx, results, shared: int = 0) -> None:
        """Score a batch of packed rows; with `shared`, one row after the KV of its contexts' common
        first `shared` tokens, which every token of the row sees."""
        dev = self.model.device
        width = max(sum(_packed_len(c, by_ctx[c]) - shared for c in row) for row in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        pos = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), 1, width, shared + width), dtype=torch.bool)
        mask[:, :, :, :shared] = True
        own = mask[:, :, :, shared:]  # the row's own columns
        scored: list[tuple[int, list[int], list[int]]] = []  # (request, flat positions whose logits score it, targets)
        for b, row in enumerate(batch):
            s = 0
            for ctx in row:
                c = len(ctx) - shared
                ids[b, s:s + c] = torch.tensor(ctx[shared:])
                pos[b, s:s + c] = torch.arange(shared, len(ctx))
                own[b, 0, s:s + c, s:s + c] = torch.ones((c, c), dtype=torch.bool).tril()
                a = s + c
                for i, cont in by_ctx[ctx]:
                    m = len(cont) - 1
                    if m:
                        ids[b, a:a + m] = torch.tensor(cont[:-1])
                        pos[b, a:a + m] = torch.arange(len(ctx), len(ctx) + m)
                        own[b, 0, a:a + m, s:s + c] = True
                        own[b, 0, a:a + m, a:a + m] = torch.ones((m, m), dtype=torch.bool).tril()
                    at = [s + c - 1, *range(a, a + m)]
                    scored.append((i, [b * width + p for p in at], list(cont)))
                    a += m
                s = a
            own[b, 0, range(s, width), range(s, width)] = True  # padding attends to itself (no empty rows)
        extra = {}
        if shared:
            extra = {self._cache_kw: self._prefix_kv(batch[0][0][:shared]), "use_cache": True}
        hidden = self.model.base_model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                                       position_ids=pos.to(dev), **extra).last_hidden_state
        flat = torch.tensor([p for _, at, _ in scored for p in at], device=dev)
        logp = F.log_softmax(self._vocab_head()(hidden.reshape(-1, hidden.shape[-1])[flat]).float(), dim=-1)
        tgt = torch.tensor([t for _, _, cont in scored for t in cont], device=dev)
        lp = logp.gather(1, tgt[:, None])[:, 0]
        hit = logp.argmax(-1) == tgt
        k = 0
        for i, at, _ in scored:
            n = len(at)
            results[i] = (float(lp[k:k + n].sum()), bool(hit[k:k + n].all()))
            k += n

    def _forward(self, cache, **inputs: Any):
        """One forward that extends `cache` in place (transformers 5 calls the argument `cache`)."""
        return self.model(**inputs, **{self._cache_kw: cache}, use_cache=True)

    @property
    def _cache_kw(self) -> str:
        import inspect

        if "_cache_kw_name" not in self.__dict__:
            params = inspect.signature(self.model.forward).parameters
            self.__dict__["_cache_kw_name"] = "cache" if "cache" in params else "past_key_values"
        return self.__dict__["_cache_kw_name"]

    # A shared prefix is run in blocks of PREFIX_BLOCK tokens whose KV is kept (LRU) across batches and
    # calls: an MMLU subject's few-shot preamble is run once per subject, not once per batch. The blocks
    # run in aligned pieces of 8, 4, 2 or 1 blocks (the largest that fits, as a number splits into powers
    # of two: 21 blocks -> 8 + 8 + 4 + 1), one forward a piece (a 32-token forward uses a CPU poorly). A
    # block's KV depends only on its tokens and on the size of the piece that ran it (part of its key:
    # the pieces before an aligned piece are always the same), never on which batch asked first, so
    # scores do not depend on chunk order or on which worker ran what.
    PREFIX_BLOCK = 32
    PREFIX_GROUP = 8
    PREFIX_BLOCKS_KEPT = 96

    def _prefix_kv(self, tokens: list[int]):
        """A cache holding the KV of `tokens` (a whole number of blocks), from kept blocks where it can."""
        from collections import OrderedDict

        dev, bs = self.model.device, self.PREFIX_BLOCK
        kept = self.__dict__.setdefault("_prefix_blocks", OrderedDict())
        blocks, cache = [], None  # `cache`, once made, holds the first blocks while new ones are computed
        for first, size in _aligned_pieces(len(tokens) // bs, self.PREFIX_GROUP):
            start, stop = first * bs, (first + size) * bs
            keys = [(tuple(tokens[:e]), size) for e in range(start + bs, stop + 1, bs)]
            if any(key not in kept for key in keys):
                if cache is None or cache.get_seq_length() != start:
                    cache = _join_blocks(blocks)
                self._forward(cache, input_ids=torch.tensor([tokens[start:stop]], device=dev),
                              position_ids=torch.arange(start, stop, device=dev).unsqueeze(0), logits_to_keep=1)
                for key, e in zip(keys, range(start + bs, stop + 1, bs), strict=True):
                    kept[key] = [(layer.keys[:, :, e - bs:e].clone(), layer.values[:, :, e - bs:e].clone())
                                 for layer in cache.layers]
            for key in keys:
                kept.move_to_end(key)
                blocks.append(kept[key])
            while len(kept) > self.PREFIX_BLOCKS_KEPT:
                kept.popitem(last=False)
        return _join_blocks(blocks)

    def _score_batch(self, batch, by_ctx, results) -> None:
        dev = self.model.device
        need_cache = any(len(c) > 1 for ctx in batch for _, c in by_ctx[ctx])
        shared = _common_prefix_len(batch) if len(batch) > 1 else 0
        cache = None
        shared -= shared % self.PREFIX_BLOCK  # whole blocks only (the rest runs with each row)
        if shared < max(self.min_shared_prefix, self.PREFIX_BLOCK):
            shared = 0
        else:  # the shared prefix's KV (run once, or kept from an earlier batch), one copy per row
            cache = self._prefix_kv(batch[0][:shared])
            cache.batch_select_indices(torch.zeros(len(batch), dtype=torch.long, device=dev))
            need_cache = True
        width = max(len(c) for c in batch) - shared
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(batch), width), pad, dtype=torch.long, device=dev)
        smask = torch.zeros((len(batch), width), dtype=torch.long, device=dev)
        for j, ctx in enumerate(batch):  # left-pad so every row's last position is its last token
            ids[j, width - (len(ctx) - shared):] = torch.tensor(ctx[shared:], device=dev)
            smask[j, width - (len(ctx) - shared):] = 1
        pos = shared + (smask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((len(batch), shared), dtype=torch.long, device=dev), smask], dim=1)
        if need_cache and cache is None:
            from transformers import DynamicCache

            cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=need_cache, logits_to_keep=1,
                         **({self._cache_kw: cache} if cache is not None else {}))
        last = F.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        multi = [(j, i, c) for j, ctx in enumerate(batch) for i, c in by_ctx[ctx] if len(c) > 1]
        tail: dict[int, tuple[float, bool]] = {}
        for group in _similar_lengths(multi, lambda x: len(x[2])):
            tail.update(self._score_tails(cache, mask, batch, group))
        for j, ctx in enumerate(batch):
            greedy_first = int(last[j].argmax())
            for i, c in by_ctx[ctx]:
                ll, greedy = float(last[j, c[0]]), greedy_first == c[0]
                if i in tail:
                    ll += tail[i][0]
                    greedy = greedy and tail[i][1]
                results[i] = (ll, greedy)

    def _score_tails(self, cache, mask, batch, multi) -> dict[int, tuple[float, bool]]:
        """Score tokens 2..n of every multi-token continuation in the batch in one forward: each row starts
        from a copy of its context's KV rows."""
        from transformers import DynamicCache

        dev = self.model.device
        rows = torch.tensor([j for j, _, _ in multi], dtype=torch.long, device=dev)
        cache = DynamicCache([(layer.keys.index_select(0, rows), layer.values.index_select(0, rows))
                              for layer in cache.layers])
        m, width = len(multi), max(len(c) - 1 for _, _, c in multi)
        ids = torch.zeros((m, width), dtype=torch.long, device=dev)
        cmask = torch.zeros((m, width), dtype=torch.long, device=dev)
        ctx_len = torch.tensor([len(batch[j]) for j, _, _ in multi], device=dev)
        for r, (_, _, c) in enumerate(multi):
            ids[r, : len(c) - 1] = torch.tensor(c[:-1], device=dev)
            cmask[r, : len(c) - 1] = 1
        full_mask = torch.cat([mask.index_select(0, rows), cmask], dim=1)
        pos = ctx_len.unsqueeze(1) + torch.arange(width, device=dev).unsqueeze(0)
        out = self._forward(cache, input_ids=ids, attention_mask=full_mask, position_ids=pos)
        logp = F.log_softmax(out.logits.float(), dim=-1)
        scores = {}
        for r, (_, i, c) in enumerate(multi):
            tgt = torch.tensor(c[1:], device=dev)
            lp = logp[r, : len(c) - 1]
            scores[i] = (float(lp.gather(1, tgt[:, None]).sum()), bool((lp.argmax(-1) == tgt).all()))
        return scores


    # ---- perplexity ------------------------------------------------------------------------------
    # HFLM scores rolling windows through its loglikelihood core, a few windows at a time, with a
    # log-softmax over the whole vocabulary at every position of the batch. This keeps lm-eval's
    # tokenisation and windows (same functions) and batches windows by length under a token budget;
    # the vocabulary projection runs only at scored positions, in slices, so its memory stays bounded
    # (Gemma's 262k-token vocabulary would need 1 GiB of logits per 1k positions otherwise).
    @torch.inference_mode()
    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows: list[tuple[int, list[int], list[int]]] = []  # (request, input ids, scored targets)
        for i, req in enumerate(requests):
            for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(
                    token_list=self.tok_encode(req.args[0]), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)):
                windows.append((i, (ctx + cont)[-(self.max_length + 1):][:-1], cont))
        totals = [0.0] * len(requests)
        order = sorted(range(len(windows)), key=lambda k: -len(windows[k][1]))
        pbar = tqdm(total=len(windows), disable=disable_tqdm, desc="rolling", leave=False)
        start = 0
        while start < len(order):
            end = start + max(1, self.batch_tokens // len(windows[order[start]][1]))
            batch = [windows[k] for k in order[start:end]]
            for (i, _, _), ll in zip(batch, self._score_windows(batch), strict=True):
                totals[i] += ll
            pbar.update(len(batch))
            start = end
        pbar.close()
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def _score_windows(self, batch) -> list[float]:
        """Summed log-probability of each window's targets (inputs right-padded into one forward pass)."""
        dev = self.model.device
        width = max(len(ids) for _, ids, _ in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(batch), width), pad, dtype=torch.long, device=dev)
        mask = torch.zeros((len(batch), width), dtype=torch.long, device=dev)
        rows, cols, targets = [], [], []
        for j, (_, inp, cont) in enumerate(batch):
            ids[j, : len(inp)] = torch.tensor(inp, device=dev)
            mask[j, : len(inp)] = 1
            rows += [j] * len(cont)
            cols += range(len(inp) - len(cont), len(inp))  # the last len(cont) positions predict cont
            targets += cont
        rows_t, cols_t = torch.tensor(rows, device=dev), torch.tensor(cols, device=dev)
        tgt = torch.tensor(targets, device=dev)
        head = self._vocab_head()
        if head is None:  # a model whose logits we cannot rebuild from its hidden states: its own forward
            logits = self.model(input_ids=ids, attention_mask=mask).logits[rows_t, cols_t].float()
            lp = logits.gather(1, tgt[:, None])[:, 0] - logits.logsumexp(-1)
        else:
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[rows_t, cols_t]
            lp = torch.empty(len(targets), dtype=torch.float32, device=dev)
            step = max(1, (64 << 20) // (4 * self.model.config.get_text_config().vocab_size))  # ~64 MiB of logits
            for s in range(0, len(targets), step):
                logits = head(hidden[s: s + step]).float()
                lp[s: s + step] = logits.gather(1, tgt[s: s + step, None])[:, 0] - logits.logsumexp(-1)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=dev).index_add_(0, rows_t, lp.double())
        return sums.tolist()

    def _vocab_head(self):
        """hidden states -> logits as the model's own forward computes them (output embedding, then
        Gemma's final soft-capping), or None if this model's forward does something else there: checked
        once against the model on a short input."""
        if not hasattr(self, "_head"):
            cfg = self.model.config.get_text_config()
            proj, cap = self.model.get_output_embeddings(), getattr(cfg, "final_logit_softcapping", None)
            head = (lambda h: proj(h)) if not cap else (lambda h: torch.tanh(proj(h) / cap) * cap)
            probe = torch.tensor([[self.prefix_token_id, *self.tok_encode("The check of the head.")]],
                                 device=self.model.device)
            try:
                with torch.inference_mode():
                    want = self.model(input_ids=probe, logits_to_keep=1).logits[0, -1].float()
                    got = head(self.model.base_model(input_ids=probe).last_hidden_state[0, -1]).float()
                self._head = head if torch.allclose(want, got, rtol=1e-4, atol=1e-4) else None
            except (AttributeError, TypeError, RuntimeError):  # no separate base model / output embedding
                self._head = None
        return self._head


def _preamble_runs_by_length(contexts: list, min_shared: int) -> list:
    """Sorted contexts regrouped: each run that shares at least `min_shared` leading tokens, longest first,
    then every context that shares no preamble, longest first (so batches need little padding)."""
    runs = _runs(contexts, min_shared)
    out = [c for r in runs if len(r) > 1 for c in sorted(r, key=len, reverse=True)]
    return out + sorted((r[0] for r in runs if len(r) == 1), key=len, reverse=True)


def _runs(contexts: list, min_shared: int) -> list[list]:
    """Consecutive contexts grouped: a run's members share at least `min_shared` leading tokens with its first."""
    runs, run = [], []
    for ctx in contexts:
        if run and _common_prefix_len([run[0], ctx]) < min_shared:
            runs.append(run)
            run = []
        run.append(ctx)
    return runs + [run] if run else runs


def _aligned_pieces(n: int, largest: int) -> list[tuple[int, int]]:
    """[0, n) as (start, size) pieces, each the largest power of two <= `largest` that is aligned at its
    start and fits: 21, 8 -> (0, 8), (8, 8), (16, 4), (20, 1)."""
    pieces, start = [], 0
    while start < n:
        size = largest
        while start % size or start + size > n:
            size //= 2
        pieces.append((start, size))
        start += size
    return pieces


def _join_blocks(blocks: list) -> Any:
    """A cache holding the given blocks' KV one after another (one concatenation per layer)."""
    from transformers import DynamicCache

    if not blocks:
        return DynamicCache()
    return DynamicCache([(torch.cat([b[i][0] for b in blocks], dim=2), torch.cat([b[i][1] for b in blocks], dim=2))
                         for i in range(len(blocks[0]))])


def _packed_len(ctx, conts) -> int:
    """Tokens a context takes in a packed row: itself, then each continuation but its last token."""
    return len(ctx) + sum(len(c) - 1 for _, c in conts)


def _similar_lengths(items: list, length, max_rows: int = 64, waste: float = 0.25) -> list[list]:
    """Items grouped, longest first, so padding each group to its longest wastes at most `waste` of it."""
    groups: list[list] = []
    for item in sorted(items, key=length, reverse=True):
        g = groups[-1] if groups else None
        if g is None or len(g) >= max_rows or (len(g) + 1) * length(g[0]) * (1 - waste) > \
                sum(length(x) for x in g) + length(item):
            groups.append([item])
        else:
            g.append(item)
    return groups


def _common_prefix_len(seqs) -> int:
    """Tokens shared by every sequence, leaving each at least one token of its own."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    k = 0
    while k < n and all(s[k] == first[k] for s in seqs):
        k += 1
    return k


def load_checkpoint(path: Path, dtype: str = "float32", device: str | None = None, **model_kwargs: Any):
    """(model, tokenizer) from a local transformers directory, on `device` (default: settings.device());
    ModelError names what is wrong."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise ModelError(f"not a model directory: {path} is a file" if path.exists() else f"model directory not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a transformers checkpoint (no config.json)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelError(f"{path} has no weights (*.safetensors)")
    set_threads()
    torch_dtype = _dtype(dtype)
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, **model_kwargs).eval()
    except Exception as exc:  # transformers and safetensors raise many types for a damaged checkpoint
        first = (str(exc).splitlines() or [""])[0]
        raise ModelError(f"cannot load checkpoint {path}: {type(exc).__name__}: {first}") from None
    device = settings.device(device)
    if device != "cpu":
        try:
            model.to(device)
        except (RuntimeError, AssertionError) as exc:  # no such device, or torch built without it
            raise ModelError(f"cannot put the model on device {device!r}: {str(exc).splitlines()[0]}") from None
    return model, tok


def weights_sha256(path: Path) -> str:
    """sha256 over the checkpoint's weight files (sorted by name), cached by size and mtime."""
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if len(files) == 1:
        return cached_sha256(files[0])
    import hashlib

    return hashlib.sha256("".join(cached_sha256(f) for f in files).encode()).hexdigest()


def backend_from_checkpoint(path: Path, spec: str, backend: str, dtype: str = "float32", device: str | None = None,
                            **opts: Any) -> HFBackend:
    model, tok = load_checkpoint(path, dtype, device)
    info = ModelInfo.from_hf(model, spec=spec, backend=backend, path=str(path), sha256=weights_sha256(path),
                             dtype=dtype, quantization="none")
    return HFBackend(model, tok, info, **opts)


@register_backend("hf", "a local transformers checkpoint directory (safetensors)")
def load(target: str, spec: str, dtype: str = "float32", **opts: Any) -> HFBackend:
    return backend_from_checkpoint(Path(target).expanduser().resolve(), spec, "hf", dtype, **opts)
