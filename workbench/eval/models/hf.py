"""`hf:<dir>` - a local transformers checkpoint, scored by lm-eval's HFLM with a faster core.

HFLM keeps lm-eval's tokenisation, chat templates and batched generation. Only its scoring loop is
replaced: each distinct context is run once (its KV cache shared by every choice), logits are
computed only at scored positions, and contexts are batched by length.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from workbench import settings
from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.base import ModelInfo, WorkbenchLM
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
                 **kwargs: Any) -> None:
        kwargs.setdefault("batch_size", 8)
        super().__init__(pretrained=model, tokenizer=tokenizer, device=str(model.device), **kwargs)
        self.info = info
        self.batch_tokens = int(batch_tokens)
        self.min_shared_prefix = int(min_shared_prefix)

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

        # Lexicographic order puts contexts that share a few-shot preamble next to each other, so a
        # batch usually shares a long prefix that is then run once (see _score_batch).
        contexts = sorted(by_ctx)
        pbar = tqdm(total=len(requests), disable=disable_tqdm, desc="loglikelihood", leave=False)
        start = 0
        while start < len(contexts):
            width, end = 0, start
            bs = int(self.batch_size) if str(self.batch_size).isdigit() else 8
            while end < len(contexts) and end - start < bs:
                w = max(width, len(contexts[end]))
                if end > start and (end - start + 1) * w > self.batch_tokens:
                    break
                width, end = w, end + 1
            batch = contexts[start:end]
            self._score_batch(batch, by_ctx, results)
            pbar.update(sum(len(by_ctx[c]) for c in batch))
            start = end
        pbar.close()
        for i, (req, _, _) in enumerate(requests):
            self.cache_hook.add_partial("loglikelihood", req, results[i])
        return results  # type: ignore[return-value]

    def _score_batch(self, batch, by_ctx, results) -> None:
        dev = self.model.device
        need_cache = any(len(c) > 1 for ctx in batch for _, c in by_ctx[ctx])
        shared = _common_prefix_len(batch) if len(batch) > 1 else 0
        cache = None
        if shared < self.min_shared_prefix:
            shared = 0
        else:  # run the shared prefix once and give every row a copy of its KV cache
            pre = self.model(input_ids=torch.tensor([batch[0][:shared]], device=dev), use_cache=True, logits_to_keep=1)
            cache = pre.past_key_values
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
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=need_cache, logits_to_keep=1)
        last = F.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        for j, ctx in enumerate(batch):
            items = by_ctx[ctx]
            multi = [(i, c) for i, c in items if len(c) > 1]
            tail: dict[int, tuple[float, bool]] = {}
            if multi:
                tail = self._score_tails(out.past_key_values, j, mask[j], len(ctx), multi)
            greedy_first = int(last[j].argmax())
            for i, c in items:
                ll, greedy = float(last[j, c[0]]), greedy_first == c[0]
                if i in tail:
                    ll += tail[i][0]
                    greedy = greedy and tail[i][1]
                results[i] = (ll, greedy)

    def _score_tails(self, cache, row: int, row_mask, ctx_len: int, multi) -> dict[int, tuple[float, bool]]:
        """Score tokens 2..n of several continuations of one context against its shared KV cache."""
        dev = self.model.device
        m, width = len(multi), max(len(c) - 1 for _, c in multi)
        cache = copy.deepcopy(cache)
        cache.batch_select_indices(torch.full((m,), row, dtype=torch.long, device=dev))
        ids = torch.zeros((m, width), dtype=torch.long, device=dev)
        cmask = torch.zeros((m, width), dtype=torch.long, device=dev)
        for r, (_, c) in enumerate(multi):
            ids[r, : len(c) - 1] = torch.tensor(c[:-1], device=dev)
            cmask[r, : len(c) - 1] = 1
        mask = torch.cat([row_mask.unsqueeze(0).expand(m, -1), cmask], dim=1)
        pos = (ctx_len + torch.arange(width, device=dev)).unsqueeze(0).expand(m, -1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        logp = F.log_softmax(out.logits.float(), dim=-1)
        scores = {}
        for r, (i, c) in enumerate(multi):
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


def _common_prefix_len(seqs) -> int:
    """Tokens shared by every sequence, leaving each at least one token of its own."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    k = 0
    while k < n and all(s[k] == first[k] for s in seqs):
        k += 1
    return k


def load_checkpoint(path: Path, dtype: str = "float32", **model_kwargs: Any):
    """(model, tokenizer) from a local transformers directory; ModelError names what is wrong."""
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
    return model, tok


def weights_sha256(path: Path) -> str:
    """sha256 over the checkpoint's weight files (sorted by name), cached by size and mtime."""
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if len(files) == 1:
        return cached_sha256(files[0])
    import hashlib

    return hashlib.sha256("".join(cached_sha256(f) for f in files).encode()).hexdigest()


def backend_from_checkpoint(path: Path, spec: str, backend: str, dtype: str = "float32", **opts: Any) -> HFBackend:
    model, tok = load_checkpoint(path, dtype)
    info = ModelInfo.from_hf(model, spec=spec, backend=backend, path=str(path), sha256=weights_sha256(path),
                             dtype=dtype, quantization="none")
    return HFBackend(model, tok, info, **opts)


@register_backend("hf", "a local transformers checkpoint directory (safetensors)")
def load(target: str, spec: str, dtype: str = "float32", **opts: Any) -> HFBackend:
    return backend_from_checkpoint(Path(target).expanduser().resolve(), spec, "hf", dtype, **opts)
