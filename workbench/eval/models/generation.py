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

Two more savings, neither changing a greedy token. The KV cache grows into spare capacity instead of
being re-concatenated at every step (a full copy of the cache per token). And greedy rows draft
tokens by prompt lookup (the continuation of the latest earlier occurrence of their last 2-3 tokens,
in the prompt or their own output): one forward checks the drafts, the tokens the model would have
picked anyway are kept, and the first one it disagrees with is replaced by its own pick. On a CPU a
decode step costs about the same for one token as for a few, so a batch that has shrunk to its
long-running tail (one HumanEval answer that runs to its token limit) moves several tokens a step.
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
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


@dataclass
class GenRequest:
    """One sequence to generate: its prompt tokens, its token budget, its sampling seed (None: greedy) and
    its own stop test (None: the batcher's), so requests of several tasks can share one batch."""

    tokens: list[int]
    max_new_tokens: int
    seed: int | None = None
    stop: Callable[[list[int]], bool] | None = None


@dataclass
class _Row:
    index: int                      # position of the request in the input list
    pos: int                        # position id of the next token fed to the model
    generated: list[int] = field(default_factory=list)
    rng: torch.Generator | None = None
    lookup: _Lookup | None = None   # prompt-lookup drafts (greedy rows only)


class _Lookup:
    """Draft tokens for one sequence: what followed the latest earlier occurrence of its last 3 (else 2)
    tokens. It learns how often its drafts are right, and stops drafting while they are not paying:
    a draft token costs about a tenth of a decode step, so drafts right less than half the time lose."""

    ORDERS = (3, 2)
    MIN_RATE = 0.5

    def __init__(self, tokens: list[int], max_len: int) -> None:
        self.seq: list[int] = []
        self.seen: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token that followed it last
        self.max_len = max_len
        self.len = min(4, max_len)  # draft length, grown while drafts are taken whole
        self.tried, self.right = 0, 0  # draft tokens checked, and how many of them were right
        self.pending: list[int] = []  # this step's candidate, checked against the pick even when not fed
        for t in tokens:
            self.append(t)

    def append(self, token: int) -> None:
        seq, i = self.seq, len(self.seq)
        for n in self.ORDERS:
            if i >= n:
                self.seen[tuple(seq[i - n:i])] = i
        seq.append(token)

    def match(self, k: int) -> list[int]:
        for n in self.ORDERS:
            start = self.seen.get(tuple(self.seq[-n:])) if k > 0 else None
            if start is not None:
                return self.seq[start:start + k]
        return []

    def draft(self, cap: int) -> list[int]:
        """The tokens to feed after the last one this step ([] when there is no match or drafts do not pay)."""
        self.pending = self.match(min(cap, self.len)) if cap > 0 else []
        worth = (self.right + 1) / (self.tried + 2) >= self.MIN_RATE
        return self.pending if worth else []

    def learn(self, fed: list[int], agreed: int, first_pick: int) -> None:
        """Update the draft statistics: `agreed` of the `fed` drafts were right; `first_pick` is the
        model's pick after the last token (which checks an unfed candidate for free)."""
        if fed:
            self.tried += agreed + (agreed < len(fed))
            self.right += agreed
            self.len = min(self.max_len, self.len + 2) if agreed == len(fed) else max(1, self.len - 1)
        elif self.pending:
            self.tried += 1
            self.right += self.pending[0] == first_pick


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

    def __init__(self, model: Any, *, max_batch: int, eos_ids: Sequence[int],
                 stop: Callable[[list[int]], bool] | None = None,
                 processors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 min_shared_prefix: int = 32, draft_tokens: int = 8, step_tokens: int = 9) -> None:
        self.model = model
        # Drafting: at most `draft_tokens` per row, and at most `step_tokens` tokens fed per step in all (a
        # full batch is already compute-bound: there drafts would cost more than they save).
        self.draft_tokens = max(0, int(draft_tokens))
        self.step_tokens = max(1, int(step_tokens))
        # A sliding-window model counts its window in cache columns, so a rejected draft's column must not
        # stay behind as a masked hole: such caches are compacted after every drafting step.
        config = getattr(model, "config", None)
        text = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
        self._windowed = bool(getattr(text, "sliding_window", None))
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
        self.decode_steps = 0   # batched decoding forwards run
        self.drafted = 0        # draft tokens checked
        self.accepted = 0       # draft tokens kept

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
                self._append(row, first)
                if self._finished(row, requests[i]):
                    out[i] = row.generated
                    if on_done:
                        on_done(i)
                    continue
                cache, mask = self._merge(cache, mask, row_cache, len(requests[i].tokens))
                rows.append(row)
            if not rows:
                continue
            drafts = self._drafts(rows)
            width = 1 + max(len(d) for d in drafts)
            ids = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
            fed = torch.zeros((len(rows), width), dtype=mask.dtype, device=self.device)
            for j, (r, d) in enumerate(zip(rows, drafts, strict=True)):
                ids[j, :1 + len(d)] = torch.tensor([r.generated[-1], *d], device=self.device)
                fed[j, :1 + len(d)] = 1
            pos = torch.tensor([[r.pos] for r in rows], device=self.device) + torch.arange(width, device=self.device)
            mask = torch.cat([mask, fed], dim=1)
            logits = self._forward(cache, input_ids=ids, attention_mask=mask, position_ids=pos, keep=width)
            self.decode_steps += 1
            keep, holes = [], False
            for j, (row, d) in enumerate(zip(rows, drafts, strict=True)):
                picked = self._pick(logits[j], [row] * width) if d else self._pick(logits[j, :1], [row])
                n_ok = 0
                while n_ok < len(d) and d[n_ok] == picked[n_ok]:
                    n_ok += 1
                self.drafted += len(d)
                self.accepted += n_ok
                if row.lookup is not None:
                    row.lookup.learn(d, n_ok, picked[0])
                done = False
                for tok in picked[:n_ok + 1]:  # the drafts the model agrees with, then its own next pick
                    row.pos += 1
                    self._append(row, tok)
                    if self._finished(row, requests[row.index]):
                        done = True
                        break
                if n_ok < width - 1:  # columns of rejected drafts (and padding) must not be attended to
                    mask[j, mask.shape[1] - width + 1 + n_ok:] = 0
                    holes = True
                if done:
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
            if rows and holes and (self._windowed or 4 * int((mask == 0).sum()) > mask.numel()):
                cache, mask = self._compact(cache, mask)
        return out

    # ---- steps ------------------------------------------------------------------------------------
    def _finished(self, row: _Row, req: GenRequest) -> bool:
        stop = req.stop or self.stop
        return (row.generated[-1] in self.eos_ids or len(row.generated) >= req.max_new_tokens
                or (stop is not None and stop(row.generated)))

    def _append(self, row: _Row, token: int) -> None:
        row.generated.append(token)
        if row.lookup is not None:
            row.lookup.append(token)

    def _drafts(self, rows: list[_Row]) -> list[list[int]]:
        """Each row's draft tokens for this step (none for sampled rows, or when the batch is full enough)."""
        cap = min(self.draft_tokens, self.step_tokens // len(rows) - 1)
        return [r.lookup.draft(cap) if r.lookup is not None else [] for r in rows]

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

    def _forward(self, cache, keep: int = 0, **inputs: Any) -> torch.Tensor:
        """Logits of one forward that extends `cache` in place: the last position's, or the last `keep`."""
        logits = self.model(**inputs, **{self._cache_kw: cache}, use_cache=True, logits_to_keep=max(1, keep)).logits
        return logits if keep else logits[:, -1, :]

    def _prefill_prefix(self, prefix: list[int]):
        cache = _cache()
        self._forward(cache, input_ids=torch.tensor([prefix], device=self.device))
        self.prefills += 1
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _admit(self, index: int, req: GenRequest, prefix: list[int], prefix_kv) -> tuple[_Row, Any, int]:
        """Prefill one request's prompt (after the shared prefix, if any); returns its row, cache, first token."""
        start = len(prefix) if prefix_kv is not None else 0
        cache = _cache(prefix_kv)
        ids = torch.tensor([req.tokens[start:]], device=self.device)
        pos = torch.arange(start, len(req.tokens), device=self.device).unsqueeze(0)
        logits = self._forward(cache, input_ids=ids, position_ids=pos)
        self.prefills += 1
        row = _Row(index=index, pos=len(req.tokens))
        if req.seed is not None:
            row.rng = torch.Generator(device=self.device).manual_seed(req.seed)
        elif self.draft_tokens and self.processors is None:
            row.lookup = _Lookup(req.tokens, self.draft_tokens)
        return row, cache, self._pick(logits, [row])[0]

    def _merge(self, cache, mask, row_cache, length: int):
        """Append a prefilled row to the batch cache; the shorter side is left-padded (masked out)."""
        row_mask = torch.ones((1, length), dtype=torch.long, device=self.device)
        if cache is None:
            return row_cache, row_mask
        width = max(mask.shape[1], length)
        for layer, new in zip(cache.layers, row_cache.layers, strict=True):
            layer.hold(torch.cat([_left_pad(layer.keys, width), _left_pad(new.keys, width)], dim=0),
                       torch.cat([_left_pad(layer.values, width), _left_pad(new.values, width)], dim=0))
        mask = torch.cat([F.pad(mask, (width - mask.shape[1], 0)), F.pad(row_mask, (width - length, 0))], dim=0)
        return cache, mask

    def _select(self, cache, mask, keep: list[int]):
        """Keep only the `keep` rows, and drop the leading columns that are padding in all of them."""
        idx = torch.tensor(keep, device=self.device)
        mask = mask[idx]
        start = int(mask.any(dim=0).long().argmax())
        for layer in cache.layers:
            layer.hold(layer.keys[idx, :, start:], layer.values[idx, :, start:])
        return cache, mask[:, start:]

    def _compact(self, cache, mask):
        """Move every row's attended columns to the right end (left-padded), dropping masked holes."""
        valid = mask.bool()
        counts = valid.sum(dim=1)
        width = int(counts.max())
        dest = (width - counts).unsqueeze(1) + valid.long().cumsum(dim=1) - 1
        rows, cols = valid.nonzero(as_tuple=True)
        src = torch.zeros((mask.shape[0], width), dtype=torch.long, device=self.device)
        src[rows, dest[rows, cols]] = cols
        new_mask = torch.zeros((mask.shape[0], width), dtype=mask.dtype, device=self.device)
        new_mask[rows, dest[rows, cols]] = 1
        for layer in cache.layers:
            b, h, _, d = layer.keys.shape
            index = src[:, None, :, None].expand(b, h, width, d)
            layer.hold(layer.keys.gather(2, index), layer.values.gather(2, index))
        return cache, new_mask


class _GrowingLayer(DynamicLayer):
    """A cache layer that writes new keys and values into spare capacity (doubling when full) instead of
    concatenating the whole cache with them at every step."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized or self.keys.numel() == 0:
            self.lazy_initialization(key_states, value_states)
            self.hold(key_states, value_states)
            return self.keys, self.values
        n, t = self.keys.shape[-2], key_states.shape[-2]
        if n + t > self._k.shape[-2] or self._k.shape[0] != key_states.shape[0]:
            self._grow(2 * (n + t))
        self._k[:, :, n:n + t] = key_states
        self._v[:, :, n:n + t] = value_states
        self.keys, self.values = self._k[:, :, :n + t], self._v[:, :, :n + t]
        return self.keys, self.values

    def hold(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Replace the layer's contents (no spare capacity until the next update)."""
        self.is_initialized = True
        self.device = keys.device
        self._k, self._v, self.keys, self.values = keys, values, keys, values

    def _grow(self, capacity: int) -> None:
        b, h, n, d = self.keys.shape
        k, v = self.keys.new_empty((b, h, capacity, d)), self.values.new_empty((b, h, capacity, self.values.shape[-1]))
        k[:, :, :n], v[:, :, :n] = self.keys, self.values
        self._k, self._v = k, v


def _cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None) -> DynamicCache:
    """An empty cache of growing layers, or one holding the given (keys, values) per layer."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = _GrowingLayer
    for k, v in kv or ():
        layer = _GrowingLayer()
        layer.hold(k, v)
        cache.layers.append(layer)
    return cache


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, width, D], zeros in front."""
    return F.pad(t, (0, 0, width - t.shape[2], 0)) if t.shape[2] < width else t
