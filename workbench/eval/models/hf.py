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


def _common_prefix_len(seqs) -> int:
    """Tokens shared by every sequence, leaving each at least one token of its own."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    k = 0
    while k < n and all(s[k] == first[k] for s in seqs):
        k += 1
    return k


def load_checkpoint(path: Path, dtype: str = "float32"):
    """(model, tokenizer) from a local transformers directory; ModelError names what is wrong."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a transformers checkpoint (no config.json)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelError(f"{path} has no weights (*.safetensors)")
    set_threads()
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=_dtype(dtype)).eval()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
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
