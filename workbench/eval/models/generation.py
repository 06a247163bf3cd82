"""Fast generation for the torch backends: continuous batching over packed sequences.

`model.generate` (lm-eval's HFLM loop) runs a fixed batch until every sequence in it has stopped,
checks stop strings by re-decoding a window of every row each step, and pads each batch to its
longest prompt. Here every forward is one packed row of tokens taken from several sequences: the next
chunk of the prompts being prefilled, then the newest token of each sequence being decoded. Each
sequence keeps its own keys and values, and attention runs sequence by sequence (`_Step.attend`,
plugged in as a transformers attention implementation for the length of one forward), so:

- nothing is padded, and a sequence that emits EOS, reaches its token limit or completes a stop string
  leaves at once; a waiting request starts prefilling in the next forward;
- decoding rides on prefilling: on a CPU a forward over a few hundred prompt tokens costs about the same
  with a token more for each running sequence, while a forward of those few tokens alone costs a read of
  every weight. Prompts are therefore prefilled in chunks of `prefill_chunk` tokens, and the running
  sequences keep decoding while a new one is prefilled;
- a token prefix shared by every request (a fixed few-shot preamble) is prefilled once and copied into
  each sequence's store; stop strings are checked on the newest tokens only.

Greedy decoding picks the same tokens as `model.generate` (same logits processors, argmax over float32
scores; the tests compare with HFLM); sampling draws from one seeded generator per request, so a
request's sample does not depend on what it was batched with.

Greedy sequences also draft tokens by prompt lookup (the continuation of the latest earlier occurrence
of their last 2-3 tokens, in the prompt or their own output) in forwards that prefill nothing: the
drafts are checked in the same forward, the tokens the model would have picked anyway are kept, and the
first one it disagrees with is replaced by its own pick. A rejected draft's keys are simply overwritten
later (a sequence's store has a length, not a mask).
"""
from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface


@dataclass
class GenRequest:
    """One sequence to generate: its prompt tokens, its token budget, its sampling seed (None: greedy) and
    its own stop test (None: the batcher's), so requests of several tasks can share one batch."""

    tokens: list[int]
    max_new_tokens: int
    seed: int | None = None
    stop: Callable[[list[int]], bool] | None = None


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


class _Slab:
    """The keys and values of the running sequences, one slot each: per layer [slots, heads, capacity, dim],
    the capacity doubling when a sequence needs more. One slab lets the sequences that decode a single
    token attend in one batched call per layer instead of one call each."""

    def __init__(self, slots: int, capacity: int) -> None:
        self.slots, self.capacity = slots, capacity
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def layer(self, layer: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's storage (allocated at its first use, shaped for tensors like `like`: [*, heads, *, dim])."""
        if layer == len(self.keys):
            shape = (self.slots, like.shape[1], self.capacity, like.shape[3])
            # zeros, not empty: a batched call reads past a sequence's end (masked), and a NaN there would
            # still poison its softmax
            self.keys.append(like.new_zeros(shape))
            self.values.append(like.new_zeros(shape))
        return self.keys[layer], self.values[layer]

    def reserve(self, length: int) -> None:
        """Make room for `length` positions in every slot."""
        if length <= self.capacity:
            return
        old, self.capacity = self.capacity, max(2 * self.capacity, length)
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                new = t.new_zeros((t.shape[0], t.shape[1], self.capacity, t.shape[3]))
                new[:, :, :old] = t
                store[i] = new


@dataclass
class _Segment:
    """A run of one sequence's tokens in a packed forward."""

    slot: int
    start: int  # offset of its first token in the forward
    n: int
    pos: int    # position of its first token (the tokens already in the sequence's slot)


class _Step:
    """One packed forward: which tokens belong to which sequence, and attention sequence by sequence
    (the single-token ones batched over the slab)."""

    def __init__(self, slab: _Slab, segments: list[_Segment], device: torch.device) -> None:
        self.slab = slab
        singles = _batched_singles([s for s in segments if s.n == 1])
        self.segments = [s for s in segments if s.n > 1 or s not in singles]
        self._masks: dict[tuple[int, int | None], torch.Tensor] = {}
        self._single_masks: dict[int | None, torch.Tensor] = {}
        self.singles = singles
        if singles:
            self.idx = torch.tensor([s.start for s in singles], device=device)
            self.slots = torch.tensor([s.slot for s in singles], device=device)
            self.pos = torch.tensor([s.pos for s in singles], device=device)
            self.span = 1 + max(s.slot for s in singles)
            self.length = 1 + max(s.pos for s in singles)

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float | None, window: int | None) -> torch.Tensor:
        """[1, H, N, D] queries (and this forward's keys, values) -> [1, N, H, D] attention outputs."""
        heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[3]
        keys, values = self.slab.layer(layer, key)
        out = query.new_empty((1, query.shape[2], heads, dim))
        if self.singles:
            keys[self.slots, :, self.pos] = key[0, :, self.idx].transpose(0, 1)
            values[self.slots, :, self.pos] = value[0, :, self.idx].transpose(0, 1)
            q = query.new_zeros((self.span, heads, dim))
            q[self.slots] = query[0, :, self.idx].transpose(0, 1)
            # one query per sequence: the query heads that share a key head become that head's rows
            o = F.scaled_dot_product_attention(q.view(self.span, kv_heads, heads // kv_heads, dim),
                                               keys[:self.span, :, :self.length], values[:self.span, :, :self.length],
                                               attn_mask=self._single_mask(window, query.device), scale=scaling)
            out[0, self.idx] = o.reshape(self.span, heads, dim)[self.slots]
        for s, seg in enumerate(self.segments):
            a, b, end = seg.start, seg.start + seg.n, seg.pos + seg.n
            keys[seg.slot:seg.slot + 1, :, seg.pos:end] = key[:, :, a:b]
            values[seg.slot:seg.slot + 1, :, seg.pos:end] = value[:, :, a:b]
            lo = max(0, seg.pos - window + 1) if window else 0  # the earliest key its first query sees
            causal = seg.pos == 0 and (not window or seg.n <= window)
            mask = None if causal or seg.n == 1 else self._mask(s, seg, lo, window, query.device)
            o = F.scaled_dot_product_attention(query[:, :, a:b], keys[seg.slot:seg.slot + 1, :, lo:end],
                                               values[seg.slot:seg.slot + 1, :, lo:end], attn_mask=mask,
                                               is_causal=causal and seg.n > 1, scale=scaling,
                                               enable_gqa=kv_heads != heads)
            out[:, a:b] = o.transpose(1, 2)
        return out

    def _single_mask(self, window: int | None, device: torch.device) -> torch.Tensor:
        """[span, 1, 1, length]: the keys each single-token sequence sees (a slot with none sees key 0,
        its output unused, so that no row of the softmax is empty)."""
        if window not in self._single_masks:
            k = torch.arange(self.length, device=device).unsqueeze(0)
            pos = self.pos.unsqueeze(1)
            seen = k <= pos
            if window:
                seen &= pos - k < window
            mask = torch.zeros((self.span, self.length), dtype=torch.bool, device=device)
            mask[:, 0] = True
            mask[self.slots] = seen
            self._single_masks[window] = mask[:, None, None, :]
        return self._single_masks[window]

    def _mask(self, s: int, seg: _Segment, lo: int, window: int | None, device: torch.device) -> torch.Tensor:
        """Which keys (positions lo..) each of the segment's queries sees: earlier ones, within the window."""
        if (s, window) not in self._masks:
            q = torch.arange(seg.pos, seg.pos + seg.n, device=device).unsqueeze(1)
            k = torch.arange(lo, seg.pos + seg.n, device=device).unsqueeze(0)
            mask = k <= q
            if window:
                mask &= q - k < window
            self._masks[s, window] = mask
        return self._masks[s, window]


# What one call per sequence costs beyond its reads, in key positions read (~100 us against ~0.15 us a position).
_CALL_COST = 650


def _batched_singles(singles: list[_Segment]) -> list[_Segment]:
    """The single-token sequences to attend in one batched call: the shortest ones, as many as pay. The
    call reads every slot up to its highest up to the longest sequence in it, so a long sequence beside
    short ones is cheaper attended alone."""
    by_len = sorted(singles, key=lambda s: s.pos)
    best, best_cost = 0, sum(s.pos + _CALL_COST for s in by_len)
    span, rest = 0, best_cost
    for k, seg in enumerate(by_len, start=1):
        span = max(span, seg.slot + 1)
        rest -= seg.pos + _CALL_COST
        cost = span * (seg.pos + 1) + _CALL_COST + rest
        if cost < best_cost:
            best, best_cost = k, cost
    return by_len[:best]


_PACKED = "workbench_packed"


def _packed_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
                      sliding_window: int | None = None, workbench_step: _Step | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    """A transformers attention implementation for packed forwards (see `_Step`)."""
    unsupported = [k for k in ("softcap", "s_aux", "position_bias") if kwargs.get(k) is not None]
    if workbench_step is None or unsupported or not getattr(module, "is_causal", True):
        raise ValueError(f"packed generation cannot run this model's attention ({', '.join(unsupported) or 'not causal'})")
    return workbench_step.attend(module.layer_idx, query, key, value, scaling, sliding_window), None


AttentionInterface.register(_PACKED, _packed_attention)


def supports(model: Any) -> bool:
    """Can `ContinuousBatcher` run this model? (a decoder whose attention is plain scaled dot-product)"""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return (not getattr(config, "is_encoder_decoder", False) and config._attn_implementation in ("sdpa", "eager")
            and getattr(config, "attn_logit_softcapping", None) is None)


@dataclass
class _Row:
    index: int                      # position of the request in the input list
    req: GenRequest
    slot: int                       # its slot in the slab
    pos: int                        # tokens in its slot: prompt tokens prefilled so far, then prompt + generated
    generated: list[int] = field(default_factory=list)
    rng: torch.Generator | None = None
    lookup: _Lookup | None = None   # prompt-lookup drafts (greedy rows only)


@dataclass
class _Feed:
    """What one row puts in a forward: its tokens (a decoding row's: its newest, then its drafts), and how
    many of their last positions' logits it needs."""

    row: _Row
    tokens: list[int]
    logits: int = 0


class ContinuousBatcher:
    """Generates token sequences for many requests with one model, at most `max_batch` at a time."""

    def __init__(self, model: Any, *, max_batch: int, eos_ids: Sequence[int],
                 stop: Callable[[list[int]], bool] | None = None,
                 processors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 min_shared_prefix: int = 32, draft_tokens: int = 8, draft_budget: int = 8,
                 prefill_chunk: int = 256) -> None:
        self.model = model
        # Drafting: at most `draft_tokens` per row and `draft_budget` per forward, only in forwards that
        # prefill nothing (a forward with a prompt chunk in it is compute-bound: drafts there cost their price).
        self.draft_tokens = max(0, int(draft_tokens))
        self.draft_budget = max(0, int(draft_budget))
        self.prefill_chunk = max(1, int(prefill_chunk))
        self.max_batch = max(1, int(max_batch))
        self.eos_ids = set(eos_ids)
        self.stop = stop
        self.processors = processors
        self.min_shared_prefix = min_shared_prefix
        self.device = next(model.parameters()).device
        self._configs = list({id(m.config): m.config for m in model.modules()
                              if hasattr(getattr(m, "config", None), "_attn_implementation_internal")}.values())
        self.forwards = 0       # packed forwards run (for tests and benchmarks)
        self.prefills = 0       # prompt chunks fed
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
        if any(not requests[i].tokens for i in todo):
            raise ValueError("a generation request has an empty prompt: there is nothing to condition on")
        prefix = self._shared_prefix([requests[i].tokens for i in todo])
        prefix_kv = self._prefill_prefix(prefix) if prefix else None
        slab = _Slab(min(self.max_batch, len(todo)), max(len(requests[i].tokens) for i in todo) + 64)
        free = list(range(slab.slots))
        # Longest prompts first (as lm-eval orders them).
        waiting = deque(sorted(todo, key=lambda i: -len(requests[i].tokens)))
        rows: list[_Row] = []
        while waiting or rows:
            while waiting and free:
                i = waiting.popleft()
                rows.append(self._admit(i, requests[i], slab, min(free), prefix, prefix_kv))
                free.remove(rows[-1].slot)
            feeds = self._plan(rows)
            logits = self._forward(slab, feeds)
            done: set[int] = set()
            at = 0
            for feed in feeds:
                row = feed.row
                mine = logits[at:at + feed.logits]
                at += feed.logits
                if self._advance(feed, mine):
                    out[row.index] = row.generated
                    done.add(row.index)
                    free.append(row.slot)
                    if on_done:
                        on_done(row.index)
            rows = [r for r in rows if r.index not in done]
        return out

    # ---- steps ------------------------------------------------------------------------------------
    def _plan(self, rows: list[_Row]) -> list[_Feed]:
        """This forward's tokens: each decoding row's newest token (and drafts), then prompt chunks."""
        prefilling = [r for r in rows if not r.generated]
        budget = self.prefill_chunk
        chunks = []
        for r in prefilling:
            if budget <= 0:
                break
            take = min(len(r.req.tokens) - r.pos, budget)
            budget -= take
            chunks.append(_Feed(r, r.req.tokens[r.pos:r.pos + take], logits=int(r.pos + take == len(r.req.tokens))))
        decoding = [r for r in rows if r.generated]
        cap = 0 if chunks or not decoding else min(self.draft_tokens, self.draft_budget // len(decoding))
        feeds = []
        for r in decoding:
            d = r.lookup.draft(cap) if r.lookup is not None else []
            feeds.append(_Feed(r, [r.generated[-1], *d], logits=1 + len(d)))
        return feeds + chunks

    def _forward(self, slab: _Slab, feeds: list[_Feed]) -> torch.Tensor:
        """Run one packed forward over the sequences in `slab`; the logits each feed asked for, in feed order."""
        tokens: list[int] = []
        positions: list[int] = []
        keep: list[int] = []
        segments = []
        for f in feeds:
            segments.append(_Segment(f.row.slot, len(tokens), len(f.tokens), f.row.pos))
            tokens += f.tokens
            positions += range(f.row.pos, f.row.pos + len(f.tokens))
            keep += range(len(tokens) - f.logits, len(tokens))
        slab.reserve(max(s.pos + s.n for s in segments))
        old = [c._attn_implementation_internal for c in self._configs]
        try:
            for c in self._configs:
                c._attn_implementation_internal = _PACKED
            logits = self.model(input_ids=torch.tensor([tokens], device=self.device),
                                position_ids=torch.tensor([positions], device=self.device), use_cache=False,
                                logits_to_keep=torch.tensor(keep or [len(tokens) - 1], device=self.device),
                                workbench_step=_Step(slab, segments, self.device)).logits[0]
        finally:
            for c, name in zip(self._configs, old, strict=True):
                c._attn_implementation_internal = name
        self.forwards += 1
        self.prefills += sum(not f.row.generated for f in feeds)
        return logits

    def _advance(self, feed: _Feed, logits: torch.Tensor) -> bool:
        """Take a forward's picks into the row; is it finished?"""
        row = feed.row
        if not row.generated:  # a prompt chunk: the last one gives the first token
            row.pos += len(feed.tokens)
            if not feed.logits:
                return False
            self._append(row, self._pick(logits, [row])[0])
            return self._finished(row)
        d = feed.tokens[1:]
        picked = self._pick(logits, [row] * len(feed.tokens))
        n_ok = 0
        while n_ok < len(d) and d[n_ok] == picked[n_ok]:
            n_ok += 1
        self.drafted += len(d)
        self.accepted += n_ok
        if row.lookup is not None:
            row.lookup.learn(d, n_ok, picked[0])
        row.pos += 1 + n_ok  # the fed token and the drafts the model agrees with; later keys are overwritten
        for tok in picked[:n_ok + 1]:  # the agreed drafts, then the model's own next pick
            self._append(row, tok)
            if self._finished(row):
                return True
        return False

    def _finished(self, row: _Row) -> bool:
        stop = row.req.stop or self.stop
        return (row.generated[-1] in self.eos_ids or len(row.generated) >= row.req.max_new_tokens
                or (stop is not None and stop(row.generated)))

    def _append(self, row: _Row, token: int) -> None:
        row.generated.append(token)
        if row.lookup is not None:
            row.lookup.append(token)

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

    def _prefill_prefix(self, prefix: list[int]) -> _Slab:
        holder = _Slab(1, len(prefix))
        self._forward(holder, [_Feed(_Row(-1, GenRequest(prefix, 0), 0, 0), prefix)])
        return holder

    def _admit(self, index: int, req: GenRequest, slab: _Slab, slot: int, prefix: list[int],
               prefix_kv: _Slab | None) -> _Row:
        """A row for the request in `slot`, holding the shared prefix's keys and values (if any)."""
        row = _Row(index=index, req=req, slot=slot, pos=len(prefix) if prefix_kv is not None else 0)
        if prefix_kv is not None:
            for layer, (k, v) in enumerate(zip(prefix_kv.keys, prefix_kv.values, strict=True)):
                keys, values = slab.layer(layer, k)
                keys[slot, :, :row.pos] = k[0, :, :row.pos]
                values[slot, :, :row.pos] = v[0, :, :row.pos]
        if req.seed is not None:
            row.rng = torch.Generator(device=self.device).manual_seed(req.seed)
        elif self.draft_tokens and self.processors is None:
            row.lookup = _Lookup(req.tokens, self.draft_tokens)
        return row
