"""`llamacpp:<file>` - a GGUF run quantized, in-process, with llama-cpp-python (optional extra).

Scoring evaluates with `logits_all` and reuses the KV cache for the prefix shared with the previous
request (the choices of one question, a fixed few-shot preamble). Generation uses a second context
without `logits_all`, which is much cheaper per token.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from lm_eval.api.model import TemplateLM
from tqdm import tqdm

from workbench import settings
from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.base import ModelInfo, WorkbenchLM, cut_at_stops, stop_sequences
from workbench.eval.models.gguf import check_gguf, gguf_quantization, resolve_gguf
from workbench.eval.models.hashing import cached_sha256


def _import_llama():
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ModelError(
            "the llamacpp backend needs llama-cpp-python: pip install -e '.[llamacpp]' (compiles llama.cpp)"
        ) from None
    return Llama


class LlamaCppLM(WorkbenchLM, TemplateLM):
    """lm-eval's TemplateLM (its context/continuation tokenisation) over llama.cpp's kernels."""

    def __init__(self, path: str, info: ModelInfo, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0) -> None:
        super().__init__()
        Llama = _import_llama()
        threads = n_threads or settings.threads()
        self._kw = dict(model_path=path, n_ctx=int(n_ctx), n_threads=threads, seed=int(seed), verbose=False)
        try:
            self.llm = Llama(logits_all=True, **self._kw)
        except Exception as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from None
        self._gen = None
        self.info = info
        self.n_ctx = int(n_ctx)
        self.add_bos = bool(self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")

    @property
    def eot_token_id(self) -> int:
        return int(self.llm.token_eos())

    @property
    def prefix_token_id(self) -> int:
        return int(self.llm.token_bos()) if self.llm.token_bos() >= 0 else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        add_bos = self.add_bos if add_special_tokens is None else bool(add_special_tokens and self.add_bos)
        return self.llm.tokenize(string.encode("utf-8"), add_bos=add_bos, special=True) if string else []

    def _eval(self, toks: list[int]) -> None:
        """Evaluate toks, reusing the KV cache for the prefix shared with what is already in it."""
        prev = self.llm.input_ids[: self.llm.n_tokens].tolist()
        n, m = 0, min(len(prev), len(toks) - 1)
        while n < m and prev[n] == toks[n]:
            n += 1
        self.llm.n_tokens = n  # Llama.eval() drops KV entries at and after n_tokens
        self.llm.eval(toks[n:])

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs: Any):
        order = sorted(range(len(requests)), key=lambda i: requests[i][1])  # neighbours share prefixes
        out: list[Any] = [None] * len(requests)
        for i in tqdm(order, disable=disable_tqdm, desc="loglikelihood", leave=False):
            args, ctx, cont = requests[i]
            toks = ((ctx or [self.prefix_token_id]) + cont)[-self.n_ctx:]
            self._eval(toks)
            x = np.asarray(self.llm.scores[len(toks) - len(cont) - 1: len(toks) - 1], dtype=np.float64)
            lp = x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
            tgt = np.asarray(cont)
            res = (float(lp[np.arange(len(cont)), tgt].sum()), bool((lp.argmax(-1) == tgt).all()))
            out[i] = res
            self.cache_hook.add_partial("loglikelihood", args, res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        out = []
        for req in tqdm(requests, disable=disable_tqdm, desc="rolling", leave=False):
            toks, total, start = self.tok_encode(req.args[0]), 0.0, 0
            window = self.n_ctx - 1
            while start < len(toks):  # disjoint windows; each token scored once
                chunk = toks[start: start + window]
                ids = ([self.prefix_token_id] + chunk) if start == 0 else toks[start - 1: start + len(chunk)]
                self._eval(ids)
                x = np.asarray(self.llm.scores[: len(ids) - 1], dtype=np.float64)
                lp = x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
                total += float(lp[np.arange(len(ids) - 1), np.asarray(ids[1:])].sum())
                start += len(chunk)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False):
        Llama = _import_llama()
        if self._gen is None:
            self._gen = Llama(logits_all=False, **self._kw)
        out = []
        for req in tqdm(requests, disable=disable_tqdm, desc="generate", leave=False):
            context, kw = req.args
            until = stop_sequences(kw.get("until"))
            text = self._gen.create_completion(
                context, max_tokens=int(kw.get("max_gen_toks", 256)), stop=until or None,
                temperature=float(kw.get("temperature", 0.0)) if kw.get("do_sample") else 0.0, top_k=1 if not kw.get("do_sample") else 40,
                seed=0,
            )["choices"][0]["text"]
            text = cut_at_stops(text, until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", req.args, text)
        return out

    def close(self) -> None:
        for llm in (getattr(self, "_gen", None), getattr(self, "llm", None)):
            if llm is not None:
                llm.close()
        self._gen = self.llm = None


@register_backend("llamacpp", "a GGUF file run quantized in-process by llama-cpp-python (extra: llamacpp)")
def load(target: str, spec: str, n_ctx: int = 4096, device: str | None = None, **_: Any) -> LlamaCppLM:
    if device is not None:
        raise ModelError("llamacpp: --device does not apply (llama.cpp runs where its build puts it); it is for hf/gguf")
    path = resolve_gguf(target)
    check_gguf(path)
    info = ModelInfo(spec=spec, backend="llamacpp", path=str(path), sha256=cached_sha256(path), dtype="gguf",
                     quantization=gguf_quantization(path))
    lm = LlamaCppLM(str(path), info, n_ctx=n_ctx)
    info.architecture = str(lm.llm.metadata.get("general.architecture", ""))
    return lm
