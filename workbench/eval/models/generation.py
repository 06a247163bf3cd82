"""Fast generation for the torch backends: continuous batching over one KV cache.

`model.generate` (lm-eval's HFLM loop) runs a fixed batch until every sequence in it has stopped,
checks stop strings by re-decoding a window of every row each step, and pads each batch to its
longest prompt. Here a sequence that emits EOS, reaches its token limit or completes a stop string
leaves the batch at once and a waiting request takes its slot (its prompt prefilled alone, then its
KV rows merged into the batch's cache, left-padded); a token prefix shared by every request (a fixed
few-shot preamble) is prefilled once and copied into each new sequence; stop strings are checked on
the newest tokens only. Greedy decoding picks the same tokens as `model.generate` (same logits
processors, argmax over float32 scores); sampling draws from one seeded generator per request, so
a request's sample does not depend on what it was batched with.
"""
from __future__ import annotations

import hashlib
import inspect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class GenRequest:
    """One sequence to generate: its prompt tokens, its token budget, and its sampling seed (None: greedy)."""

    tokens: list[int]
    max_new_tokens: int
    seed: int | None = None


@dataclass
class _Row:
    index: int                      # position of the request in the input list
    pos: int                        # position id of the next token fed to the model
    generated: list[int] = field(default_factory=list)
    rng: torch.Generator | None = None


def request_seed(seed: int, context: str, occurrence: int) -> int:
    """A per-request sampling seed from the run's seed, the prompt and which repeat of it this is."""
    digest = hashlib.sha256(f"{seed}\0{occurrence}\0{context}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class StopChecker:
    """Does a sequence's decoded text contain a stop string yet? Looks at the newest tokens only."""

    def __init__(self, stops: Sequence[str], decode: Callable[[list[int]], str]) -> None:
        self.stops = [s for s in stops if s]
        self.decode = decode
        # A stop string of n characters spans at most n tokens (+2 for merges at its edges, as lm-eval's
        # MultiTokenEOSCriteria looks back).
        self.window = max((len(s) for s in self.stops), default=0) + 2

    def __call__(self, generated: list[int]) -> bool:
        if not self.stops:
            return False
        recent = self.decode(generated[-self.window:])
        if not any(s in recent for s in self.stops):
            return False
        text = self.decode(generated)  # confirm on the whole text (a window can decode differently at its edge)
        return any(s in text for s in self.stops)


class ContinuousBatcher:
    """Generates token sequences for many requests with one model, at most `max_batch` at a time."""

    def __init__(self, model: Any, *, max_batch: int, eos_ids: Sequence[int], stop: Callable[[list[int]], bool],
                 processors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 min_shared_prefix: int = 32) -> None:
        self.model = model
        self.max_batch = max(1, int(max_batch))
        self.eos_ids = set(eos_ids)
        self.stop = stop
        self.processors = processors
        self.min_shared_prefix = min_shared_prefix
        self.device = next(model.parameters()).device
        # transformers 5 renamed forward's `past_key_values` to `cache` (the old name warns, then goes).
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.prefills = 0       # prompt forwards run (for tests and benchmarks)
        self.decode_steps = 0   # batched one-token forwards run

    # ---- public ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, requests: Sequence[GenRequest], on_done: Callable[[int], None] | None = None) -> list[list[int]]:
        """The generated tokens of every request (EOS included if emitted), in request order."""
        out: list[list[int]] = [[] for _ in requests]
        todo = [i for i, r in enumerate(requests) if r.max_new_tokens > 0]
        for i, r in enumerate(requests):
            if r.max_new_tokens <= 0 and on_done:
                on_done(i)
        if not todo:
            return out
        prefix = self._shared_prefix([requests[i].tokens for i in todo])
        prefix_kv = self._prefill_prefix(prefix) if prefix else None
        # Longest prompts first (as lm-eval orders them): the batch's padded width shrinks as it drains.
        waiting = deque(sorted(todo, key=lambda i: -len(requests[i].tokens)))
        rows: list[_Row] = []
        cache, mask = None, None
        while waiting or rows:
            while waiting and len(rows) < self.max_batch:
                i = waiting.popleft()
                row, row_cache, first = self._admit(i, requests[i], prefix, prefix_kv)
                row.generated.append(first)
                if self._finished(row, requests[i]):
                    out[i] = row.generated
                    if on_done:
                        on_done(i)
                    continue
                cache, mask = self._merge(cache, mask, row_cache, len(requests[i].tokens))
                rows.append(row)
            if not rows:
                continue
            ids = torch.tensor([[r.generated[-1]] for r in rows], device=self.device)
            pos = torch.tensor([[r.pos] for r in rows], device=self.device)
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=self.device)], dim=1)
            logits = self._forward(cache, input_ids=ids, attention_mask=mask, position_ids=pos)
            self.decode_steps += 1
            picked = self._pick(logits, rows)
            keep = []
            for j, (row, tok) in enumerate(zip(rows, picked, strict=True)):
                row.pos += 1
                row.generated.append(tok)
                if self._finished(row, requests[row.index]):
                    out[row.index] = row.generated
                    if on_done:
                        on_done(row.index)
                else:
                    keep.append(j)
            if len(keep) < len(rows):
                rows = [rows[j] for j in keep]
                if rows:
                    cache, mask = self._select(cache, mask, keep)
                else:
                    cache, mask = None, None
        return out

    # ---- steps ------------------------------------------------------------------------------------
    def _finished(self, row: _Row, req: GenRequest) -> bool:
        return (row.generated[-1] in self.eos_ids or len(row.generated) >= req.max_new_tokens
                or self.stop(row.generated))

    def _pick(self, logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        scores = logits.to(dtype=torch.float32)
        if self.processors is not None:
            scores = self.processors(None, scores)
        if rows[0].rng is None:  # greedy (a batch is never mixed: one sampling setting per run)
            return scores.argmax(dim=-1).tolist()
        probs = F.softmax(scores, dim=-1)
        return [int(torch.multinomial(probs[j], 1, generator=r.rng)) for j, r in enumerate(rows)]

    def _shared_prefix(self, prompts: list[list[int]]) -> list[int]:
        """Tokens every prompt starts with (leaving each at least one of its own), if worth sharing."""
        if len(prompts) < 2:
            return []
        first, n = prompts[0], min(len(p) for p in prompts) - 1
        k = 0
        while k < n and all(p[k] == first[k] for p in prompts):
            k += 1
        return first[:k] if k >= self.min_shared_prefix else []

    def _forward(self, cache, **inputs: Any) -> torch.Tensor:
        """Last-position logits of one forward that extends `cache` in place."""
        return self.model(**inputs, **{self._cache_kw: cache}, use_cache=True, logits_to_keep=1).logits[:, -1, :]

    def _prefill_prefix(self, prefix: list[int]):
        from transformers import DynamicCache

        cache = DynamicCache()
        self._forward(cache, input_ids=torch.tensor([prefix], device=self.device))
        self.prefills += 1
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _admit(self, index: int, req: GenRequest, prefix: list[int], prefix_kv) -> tuple[_Row, Any, int]:
        """Prefill one request's prompt (after the shared prefix, if any); returns its row, cache, first token."""
        from transformers import DynamicCache

        start = len(prefix) if prefix_kv is not None else 0
        cache = DynamicCache(prefix_kv) if prefix_kv is not None else DynamicCache()
        ids = torch.tensor([req.tokens[start:]], device=self.device)
        pos = torch.arange(start, len(req.tokens), device=self.device).unsqueeze(0)
        logits = self._forward(cache, input_ids=ids, position_ids=pos)
        self.prefills += 1
        row = _Row(index=index, pos=len(req.tokens))
        if req.seed is not None:
            row.rng = torch.Generator(device=self.device).manual_seed(req.seed)
        return row, cache, self._pick(logits, [row])[0]

    def _merge(self, cache, mask, row_cache, length: int):
        """Append a prefilled row to the batch cache; the shorter side is left-padded (masked out)."""
        row_mask = torch.ones((1, length), dtype=torch.long, device=self.device)
        if cache is None:
            return row_cache, row_mask
        width = max(mask.shape[1], length)
        for layer, new in zip(cache.layers, row_cache.layers, strict=True):
            layer.keys = torch.cat([_left_pad(layer.keys, width), _left_pad(new.keys, width)], dim=0)
            layer.values = torch.cat([_left_pad(layer.values, width), _left_pad(new.values, width)], dim=0)
        mask = torch.cat([F.pad(mask, (width - mask.shape[1], 0)), F.pad(row_mask, (width - length, 0))], dim=0)
        return cache, mask

    def _select(self, cache, mask, keep: list[int]):
        """Keep only the `keep` rows, and drop the leading columns that are padding in all of them."""
        idx = torch.tensor(keep, device=self.device)
        mask = mask[idx]
        start = int(mask.any(dim=0).long().argmax())
        for layer in cache.layers:
            layer.keys = layer.keys[idx, :, start:]
            layer.values = layer.values[idx, :, start:]
        return cache, mask[:, start:]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, width, D], zeros in front."""
    return F.pad(t, (0, 0, width - t.shape[2], 0)) if t.shape[2] < width else t
