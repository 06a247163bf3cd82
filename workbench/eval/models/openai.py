"""`openai:<base_url>` - any OpenAI-compatible completions server (vLLM, TGI, llama.cpp servers).

Two ways to score a continuation:
* `echo`: one request with echo=True; token log-probs of the prompt (the OpenAI legacy contract).
* `forced`: one request per continuation token, without echo, with a +100 logit bias on that token
  so the server "generates" it and reports its (unbiased) log-prob. Slower, but exact on servers
  whose echo log-probs are wrong - llama-cpp-python's server shifts them by one position, which is
  why lm-eval's stock gguf/local-completions path returns wrong scores against it.
`auto` (the default) probes the server once and uses echo only if it agrees with forced scoring.
"""
from __future__ import annotations

import os
from typing import Any

import requests
from lm_eval.api.model import TemplateLM
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.base import ModelInfo, WorkbenchLM, cut_at_stops, stop_sequences

_PROBE = ("The capital of France is", " Paris, and the capital of Italy is Rome.")


class OpenAICompletionsLM(WorkbenchLM, TemplateLM):
    """Scores through the server; forced scoring tokenises as lm-eval's TemplateLM does."""

    def __init__(self, base_url: str, info: ModelInfo, model: str | None = None, mode: str = "auto",
                 timeout: float = 120.0, retries: int = 3, api_key: str | None = None) -> None:
        super().__init__()
        if mode not in ("auto", "echo", "forced"):
            raise ModelError(f"openai backend: mode must be auto, echo or forced, not {mode!r}")
        self.base = base_url.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.root = self.base[: -len("/v1")]
        self.info = info
        self.timeout, self.retries = timeout, retries
        self.session = requests.Session()
        # Transient failures (connection errors, 5xx, 429) are retried with backoff by urllib3.
        retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.model = model or self._first_model()
        info.extra["served_model"] = self.model
        self.mode = mode
        if mode == "auto":
            self.mode = self._probe_mode()
        info.extra["logprob_mode"] = self.mode

    # ---- HTTP -------------------------------------------------------------------------------
    def _post(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            r = self.session.post(url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ModelError(f"no answer from {url} after {self.retries} retries: {exc}") from None
        if r.status_code >= 400:
            raise ModelError(f"server at {self.root} refused the request ({r.status_code}): {r.text[:200]}")
        try:
            return r.json()
        except ValueError:
            raise ModelError(f"server at {url} answered with something that is not JSON: {r.text[:200]!r}") from None

    def _first_model(self) -> str:
        try:
            r = self.session.get(f"{self.base}/models", timeout=self.timeout)
            r.raise_for_status()
            return r.json()["data"][0]["id"]
        except (requests.RequestException, KeyError, IndexError, ValueError) as exc:
            raise ModelError(f"no OpenAI-compatible server answering at {self.base}/models: {exc}") from None

    def _complete(self, **payload: Any) -> dict[str, Any]:
        return self._post(f"{self.base}/completions", {"model": self.model, "temperature": 0.0, **payload})["choices"][0]

    @property
    def eot_token_id(self) -> int:
        raise ModelError("the openai backend cannot score an empty context (no end-of-text id from the server)")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return self.tokenize(string) if string else []

    def tokenize(self, text: str) -> list[int]:
        for path, body, key in (("/extras/tokenize", {"input": text}, "tokens"),
                                ("/tokenize", {"prompt": text, "model": self.model, "add_special_tokens": False}, "tokens")):
            try:
                r = self.session.post(self.root + path, json=body, timeout=self.timeout)
                if r.ok:
                    return list(r.json()[key])
            except requests.RequestException:
                continue
        raise ModelError(f"server at {self.root} offers no tokenize endpoint (needed for forced scoring)")

    # ---- scoring ------------------------------------------------------------------------------
    def _score_echo(self, context: str, continuation: str) -> tuple[float, bool]:
        c = self._complete(prompt=context + continuation, max_tokens=1, echo=True, logprobs=1)
        lp = c["logprobs"]
        total, greedy = 0.0, True
        for off, tok, tlp, top in zip(lp["text_offset"], lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
            if off < len(context) or off >= len(context) + len(continuation):
                continue
            total += float(tlp)
            if top:
                greedy = greedy and max(top, key=top.get) == tok
        return total, greedy

    def _score_forced(self, context: str, continuation: str, cont: list[int] | None = None) -> tuple[float, bool]:
        """Force each continuation token in turn (`cont`: its ids, from lm-eval's pair encoding)."""
        if cont is None:
            cont = self._encode_pair(context, continuation)[1]
        total, greedy, prefix = 0.0, True, context
        for tok in cont:
            c = self._complete(prompt=prefix, max_tokens=1, logprobs=1, logit_bias={str(tok): 100})
            lp = c["logprobs"]
            total += float(lp["token_logprobs"][0])
            top = lp["top_logprobs"][0] or {}
            greedy = greedy and bool(top) and max(top, key=top.get) == lp["tokens"][0]
            prefix += c["text"]
        return total, greedy

    def _probe_mode(self) -> str:
        try:
            echo = self._score_echo(*_PROBE)[0]
        except (ModelError, KeyError, TypeError):
            return "forced"
        forced = self._score_forced(*_PROBE)[0]
        return "echo" if abs(echo - forced) < 1e-2 else "forced"

    def loglikelihood(self, requests_, disable_tqdm: bool = False):
        if self.mode != "echo":  # forced: lm-eval's TemplateLM tokenises, _loglikelihood_tokens scores
            return super().loglikelihood(requests_, disable_tqdm=disable_tqdm)
        out = []
        for req in tqdm(requests_, disable=disable_tqdm, desc="loglikelihood", leave=False):
            res = self._score_echo(*req.args)
            out.append(res)
            self.cache_hook.add_partial("loglikelihood", req.args, res)
        return out

    def _loglikelihood_tokens(self, requests_, disable_tqdm: bool = False, **kwargs: Any):
        out = []
        for args, _ctx, cont in tqdm(requests_, disable=disable_tqdm, desc="loglikelihood", leave=False):
            res = self._score_forced(*args, cont=cont)
            out.append(res)
            self.cache_hook.add_partial("loglikelihood", args, res)
        return out

    def loglikelihood_rolling(self, requests_, disable_tqdm: bool = False):
        raise NotImplementedError("rolling log-likelihood (perplexity tasks) is not supported by the openai backend")

    def generate_until(self, requests_, disable_tqdm: bool = False):
        out = []
        for req in tqdm(requests_, disable=disable_tqdm, desc="generate", leave=False):
            context, kw = req.args
            until = stop_sequences(kw.get("until"))
            c = self._complete(prompt=context, max_tokens=int(kw.get("max_gen_toks", 256)), stop=until[:4] or None,
                               temperature=float(kw.get("temperature", 0.0)) if kw.get("do_sample") else 0.0)
            text = cut_at_stops(c["text"], until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", req.args, text)
        return out

    def close(self) -> None:
        self.session.close()


@register_backend("openai", "an OpenAI-compatible completions server, e.g. openai:http://127.0.0.1:8000/v1")
def load(target: str, spec: str, mode: str = "auto", model: str | None = None, device: str | None = None,
         **_: Any) -> OpenAICompletionsLM:
    if device is not None:
        raise ModelError("openai: --device does not apply to a server backend; it is for hf/gguf")
    if not target.startswith(("http://", "https://")):
        raise ModelError(f"openai backend needs a base URL like openai:http://127.0.0.1:8000/v1, got {target!r}")
    info = ModelInfo(spec=spec, backend="openai", path=target, quantization="server-side")
    lm = OpenAICompletionsLM(target, info, model=model, mode=mode)
    info.sha256 = ""  # the server does not expose its weights; the served model id is recorded instead
    return lm
