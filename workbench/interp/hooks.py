"""The hook layer: a model spec loaded into TransformerLens 4's `TransformerBridge`, addressed by TL names.

Activations are named as in TransformerLens (`blocks.{l}.hook_resid_pre`, `blocks.{l}.attn.hook_pattern`,
`blocks.{l}.hook_mlp_out`, `blocks.{l}.attn.hook_z`, ...). The bridge runs the HF modules themselves,
so hooked logits equal raw HF logits. Prompts are tokenised by the HF tokenizer (never `to_tokens`,
which would prepend a BOS the HF tokenizer does not add for SmolLM2).
"""
from __future__ import annotations

import ctypes
import difflib
import functools
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelError
from workbench.interp.errors import PromptTooLongError, TokenError, UnknownHookError
from workbench.registry import Registry

Hook = tuple[str, Callable[..., Any]]
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class BlockInput:
    """What one forward fed a block: the residual stream entering it and the other arguments (mask, positions)."""

    resid: torch.Tensor          # [batch, pos, d_model], = blocks.{l}.hook_resid_pre
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ModelRef:
    """Where a spec's torch weights live, and the sha256 that identifies them."""

    spec: str
    checkpoint: Path
    sha256: str


# ---- spec -> checkpoint (a registry: one resolver per backend prefix that has torch weights) ----
Resolver = Callable[[str, str], ModelRef]
RESOLVERS: Registry[Resolver] = Registry("torch-weights resolver", error=ModelError)


def register_resolver(backend: str) -> Callable[[Resolver], Resolver]:
    """Register `resolve(target, spec) -> ModelRef` for specs of one backend."""
    return RESOLVERS.register(backend)


@register_resolver("gguf")
def _resolve_gguf(target: str, spec: str) -> ModelRef:
    from workbench.eval.models.gguf import converted_checkpoint, resolve_gguf

    ckpt, sha = converted_checkpoint(resolve_gguf(target))
    return ModelRef(spec, ckpt, sha)


@register_resolver("hf")
def _resolve_hf(target: str, spec: str) -> ModelRef:
    from workbench.eval.models.hf import weights_sha256

    path = Path(target).expanduser().resolve()
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a transformers checkpoint (no config.json)")
    return ModelRef(spec, path, weights_sha256(path))


def resolve(spec: str) -> ModelRef:
    """The torch checkpoint behind a spec; ModelError for backends without torch weights."""
    from workbench.eval.models import parse_spec

    backend, target = parse_spec(spec)
    if backend not in RESOLVERS:
        raise ModelError(f"interpretability tools need torch weights; {spec!r} uses the {backend!r} backend "
                         f"(use one of: {', '.join(p + ':' for p in RESOLVERS.names())} or an embedded alias)")
    return RESOLVERS.get(backend)(target, spec)


# ---- quantized backends -> the float weights they quantize (what the hooks can load instead) ----
FLOAT_WEIGHTS: Registry[Callable[[str], str]] = Registry("float-weights counterpart", error=ModelError)


@FLOAT_WEIGHTS.register("int8")
def _int8_float(target: str) -> str:
    return f"hf:{target}" if Path(target).expanduser().is_dir() else f"gguf:{target}"


@FLOAT_WEIGHTS.register("llamacpp")
def _llamacpp_float(target: str) -> str:
    return f"gguf:{target}"


def torch_weights(spec: str) -> tuple[str, str | None]:
    """The spec the hooks load for `spec` and why it differs: (spec, None) when it has torch weights; for a
    quantized backend, (the float checkpoint it quantizes, a note saying so); ModelError when there is none."""
    from workbench.eval.models import parse_spec

    backend, target = parse_spec(spec)
    if backend in RESOLVERS:
        return spec, None
    if backend in FLOAT_WEIGHTS:
        float_spec = FLOAT_WEIGHTS.get(backend)(target)
        return float_spec, (f"{spec} quantizes its weights at load; interpretability tools need float torch "
                            f"weights, so this runs on the same weights unquantized ({float_spec})")
    resolve(spec)  # raises the ModelError that names the backends with torch weights
    return spec, None


# ---- the hooked model ------------------------------------------------------------------------
class HookedModel:
    """A bridge over one HF causal LM, with its tokenizer and identity (spec, sha256)."""

    def __init__(self, hf_model: Any, tokenizer: Any, ref: ModelRef) -> None:
        from transformer_lens.model_bridge import TransformerBridge

        _keep_freed_memory()
        self.hf = hf_model.eval()
        self.tokenizer = tokenizer
        self.ref = ref
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.bridge = TransformerBridge.boot_transformers(
                str(ref.checkpoint), hf_model=self.hf, tokenizer=tokenizer, device="cpu")
        self._names = sorted(self.bridge.hook_dict)
        self._groups: list[tuple[Any, tuple[str, ...]]] | None = None

    # identity and shape
    @property
    def spec(self) -> str:
        return self.ref.spec

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.bridge.cfg.n_heads)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def n_ctx(self) -> int:
        """Longest prompt the model takes (the HF config's max_position_embeddings)."""
        return int(getattr(self.hf.config, "max_position_embeddings", None) or self.bridge.cfg.n_ctx)

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_output_embeddings().weight.shape[0])

    # names
    def check_names(self, names: Iterable[str]) -> list[str]:
        """The names, or UnknownHookError naming the first unknown one and its closest matches."""
        names = list(names)
        known = set(self._names)
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, self._names, n=5, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownHookError(
                    f"unknown hook name {name!r} for {self.spec} ({self.n_layers} layers, "
                    f"{len(self._names)} hook points, e.g. blocks.0.hook_resid_pre){hint}")
        return names

    # tokens
    def tokenize(self, prompt: str | Sequence[str]) -> torch.Tensor:
        """Token ids [batch, pos] from the HF tokenizer; PromptTooLongError past the context."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        rows = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        for p, ids in zip(prompts, rows):
            if not ids:
                raise TokenError(f"prompt {p[:40]!r} tokenises to nothing")
            self.check_length(len(ids))
        if len({len(r) for r in rows}) != 1:
            raise TokenError(f"prompts tokenise to different lengths {[len(r) for r in rows]}; "
                             "this tool needs prompts of equal token length")
        return torch.tensor(rows, dtype=torch.long)

    def check_length(self, n_tokens: int) -> None:
        if n_tokens > self.n_ctx:
            raise PromptTooLongError(f"prompt has {n_tokens} tokens but {self.spec} takes at most {self.n_ctx}")

    def token_strings(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def single_token(self, text: str) -> int:
        """The id of `text` as exactly one vocabulary token; TokenError otherwise."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = self.token_strings(ids)
            raise TokenError(f"target {text!r} is not a single token in the vocabulary of {self.spec}: "
                             f"it tokenises to {len(ids)} tokens {pieces}")
        return int(ids[0])

    # running
    @property
    def hook_names(self) -> list[str]:
        """Every hook name of the model, aliases included (sorted)."""
        return list(self._names)

    def run_with_cache(self, tokens: torch.Tensor, names: Sequence[str] | None = None, *,
                       need_logits: bool = True) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """(logits or None, {name: activation}) caching only `names` (None: every hook point that fires).

        Without `need_logits` the forward stops after the last block any name lives in (the
        bridge's `stop_at_layer`), so early-layer caches skip the rest of the model.
        """
        explicit = names is not None
        names = self.check_names(names) if explicit else self._names
        self.check_length(tokens.shape[-1])
        stop = None
        if not need_logits:
            layers = [_layer_of(n) for n in names]
            if layers and all(l is not None for l in layers) and max(layers) + 1 < self.n_layers:
                stop = max(layers) + 1
        # One plain torch forward hook per hook point, storing the activation under every name asked for
        # it: the bridge's own run_with_cache spends more on per-hook bookkeeping than the forward itself.
        groups = self._hook_groups(names) if explicit else self._all_groups()
        cache: dict[str, torch.Tensor] = {}
        handles = [hp.register_forward_hook(_storer(cache, keys, hp.hook_conversion)) for hp, keys in groups]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.bridge(tokens, stop_at_layer=stop)
        finally:
            for h in handles:
                h.remove()
        if explicit:
            missing = [n for n in names if n not in cache]
            if missing:
                raise UnknownHookError(f"hook point(s) {', '.join(missing[:5])} did not fire in a forward of "
                                       f"{self.spec} (switched off in this bridge's config)")
            cache = {n: cache[n] for n in names}
        return (out if stop is None else None), cache

    def _hook_groups(self, names: Iterable[str]) -> list[tuple[Any, tuple[str, ...]]]:
        """(hook point, the names among `names` that spell it) for each distinct hook point."""
        hook_dict = self.bridge.hook_dict
        groups: dict[int, tuple[Any, list[str]]] = {}
        for n in names:
            hp = hook_dict[n]
            groups.setdefault(id(hp), (hp, []))[1].append(n)
        return [(hp, tuple(keys)) for hp, keys in groups.values()]

    def _all_groups(self) -> list[tuple[Any, tuple[str, ...]]]:
        if self._groups is None:
            self._groups = self._hook_groups(self._names)
        return self._groups

    def run_with_hooks(self, tokens: torch.Tensor, hooks: Sequence[Hook]) -> torch.Tensor:
        """Logits [batch, pos, vocab] of a forward with `hooks` (TL hook functions `f(tensor, hook)`)."""
        self.check_names([n for n, _ in hooks])
        self.check_length(tokens.shape[-1])
        return self.bridge.run_with_hooks(tokens, fwd_hooks=list(hooks))

    @contextmanager
    def hooks(self, hooks: Sequence[Hook]) -> Iterator[None]:
        """`hooks` attached for the duration of the block (for forwards run piecewise with `run_block`)."""
        self.check_names([n for n, _ in hooks])
        with self.bridge.hooks(fwd_hooks=list(hooks)):
            yield

    def block_inputs(self, tokens: torch.Tensor) -> list[BlockInput]:
        """Each block's input in one forward of `tokens`, so a later run can resume at any block with `run_block`.

        The arguments are the model's own (its mask and rotary embeddings per layer type), minus its KV cache.
        """
        self.check_length(tokens.shape[-1])
        layers = self.bridge.blocks
        seen: list[BlockInput | None] = [None] * len(layers)

        def record(i: int) -> Callable[..., None]:
            def pre(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
                resid = args[0] if args else kwargs["hidden_states"]
                rest = {k: v for k, v in kwargs.items() if k not in _NOT_REPLAYED}
                seen[i] = BlockInput(resid, rest)
            return pre

        handles = [layer.register_forward_pre_hook(record(i), with_kwargs=True) for i, layer in enumerate(layers)]
        try:
            self.bridge(tokens, use_cache=False)
        finally:
            for h in handles:
                h.remove()
        if any(b is None for b in seen):
            raise ModelError(f"{self.spec}: not every block ran in a forward; cannot resume at a block")
        return seen  # type: ignore[return-value]

    def run_block(self, layer: int, resid: torch.Tensor, inp: BlockInput) -> torch.Tensor:
        """Block `layer` applied to `resid` [batch, pos, d_model] with the other arguments of `inp` (hooks fire)."""
        out = self.bridge.blocks[layer](resid, **inp.kwargs)
        return out[0] if isinstance(out, tuple) else out

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        self.check_length(tokens.shape[-1])
        return self.bridge(tokens)

    def final_norm(self) -> torch.nn.Module:
        """The model's own final norm module (the HF module the bridge wraps)."""
        return self.hf.get_decoder().norm

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits from a residual stream: the final norm then the unembedding, as the model applies them."""
        logits = self.hf.get_output_embeddings()(self.final_norm()(resid))
        cap = getattr(self.hf.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


@functools.cache
def _keep_freed_memory() -> None:
    """Have glibc keep freed heap memory for reuse instead of returning it to the OS at each free.

    A full cache is tens of MB of fresh tensors per forward (74 MB for SmolLM2 on 44 tokens); with glibc's
    defaults the heap is trimmed when the caller drops one, and the next cache re-faults every page
    (~16k page faults, ~15% of the forward). Process-wide: up to 256 MB of freed memory stays mapped.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)   # glibc's largest: blocks below it come from the heap
    mallopt(m_trim_threshold, 256 << 20)


# A block's recorded arguments minus the residual stream and the KV cache (a replay must not extend it).
_NOT_REPLAYED = frozenset({"hidden_states", "cache", "past_key_values", "past_key_value", "use_cache"})


def _storer(cache: dict[str, torch.Tensor], keys: tuple[str, ...], conversion: Any) -> Callable[..., None]:
    """A torch forward hook on a HookPoint that stores its output (as the bridge's cache sees it) under `keys`."""
    def store(module: Any, args: Any, output: Any) -> None:
        if isinstance(output, tuple):
            output = output[0]
        if conversion is not None:
            output = conversion.convert(output)
        if output.requires_grad:
            output = output.detach()
        for k in keys:
            cache[k] = output

    return store


def _layer_of(name: str) -> int | None:
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None


def act_name(name: str, layer: int | str | None = None) -> str:
    """The TransformerLens hook name of an activation (`act_name("resid_pre", 3)` -> `blocks.3.hook_resid_pre`;
    `layer="{l}"` gives the pattern recorded in artifact manifests). TransformerLens' own helper, so every
    activation has the one name the TransformerLens docs give it."""
    from transformer_lens.utilities import get_act_name

    return get_act_name(name, layer)


def resid_name(layer: int, where: str = "pre") -> str:
    return act_name(f"resid_{where}", layer)


def load_hooked(spec: str, *, dtype: str = "float32", transform: Callable[[Any], Any] | None = None) -> HookedModel:
    """Load a model spec for interpretability (eager attention, so hooks see patterns).

    `transform` maps the loaded HF model to a variant (e.g. a quantized copy) before the bridge wraps it.
    """
    from workbench.eval.models.hf import load_checkpoint

    ref = resolve(spec)
    hf, tok = load_checkpoint(ref.checkpoint, dtype, device="cpu", attn_implementation="eager")  # the bridge runs on CPU
    if transform is not None:
        hf = transform(hf)
    return HookedModel(hf, tok, ref)
