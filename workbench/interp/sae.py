"""TopK sparse autoencoders with EleutherAI's `sparsify` (package `eai-sparsify`), trained on a stored corpus.

`workbench interp sae train --model M --layer L [--site resid_post] [--expansion 8] [--k 32]
[--tokens N]` trains one `sparsify.SparseCoder` on the corpus' activations at `blocks.{L}.<site>`, so
training never re-runs the model. The recipe is the library trainer's (`sparsify.Trainer`, loss
`fvu`): decoder bias initialised to the first batch's mean, unit-norm decoder rows (renormalised
before every step, gradient parallel to them removed), signSGD under a schedule-free wrapper
(momentum 0.95, lr 5e-3 / sqrt(latents / 2^14)), optional AuxK loss on dead latents; only the data
loop is ours (shards in a seeded order, rows shuffled within a shard, batches of `--batch-tokens`).
Attention-sink tokens are left out, in training and in evaluation: position 0 of each document, and
any token whose activation norm exceeds `--sink-factor` (10) x the corpus' median norm (SmolLM2 has
no BOS token; its first token, and a few later ones such as an early newline, carry norms ~24,000
where the median is ~170 at layer 15: one such token in 4,000 holds ~90% of the variance, so left
in it would decide the FVU on its own). The threshold is stored with the SAE; evaluation also reports
the FVU with the sink tokens in.

Evaluation (`evaluate`, run after training on `--eval-tokens` held-out mirror tokens and by
`workbench interp sae eval`): fraction of variance unexplained (FVU; variance explained = 1 - FVU),
L0, dead latents (never fire on the evaluation tokens) and dense ones (fire on > 10% of them), and
the downstream test: next-token cross-entropy with the SAE's reconstruction spliced in at the site,
against the clean model and the zero-ablated site: loss recovered = (CE_zero - CE_sae) / (CE_zero -
CE_clean). The weights are stored inside the artifact in the library's own format (`sae/cfg.json`,
`sae/sae.safetensors`: `sparsify.SparseCoder.load_from_disk(<artifact dir>/sae)` loads them).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.argtypes import float_in, int_at_least
from workbench.interp import artifacts as A
from workbench.interp.artifacts import Blobs, Meta, register_kind
from workbench.interp.collect import open_corpus
from workbench.interp.corpus import text_corpus
from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel
from workbench.interp.sites import hook_name, parse_hook
from workbench.interp.tools import Tool, arg, register_tool
from workbench.settings import ACTIVATIONS_HELP, DATA_HELP
from workbench.store.activations import Corpus

WEIGHTS_DIR = "sae"
DENSE_ABOVE = 0.1     # a latent firing on more than this share of tokens is "dense"
SINK_FACTOR = 10.0    # tokens with an activation norm above this x the median are attention sinks


def sparsify() -> Any:
    """The `sparsify` package (its import prints a note about Triton to stdout: kept off ours)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import sparsify as sp
            import sparsify.sign_sgd
    except ImportError:
        raise InterpError("SAE tools need EleutherAI's sparsify: pip install eai-sparsify") from None
    return sp


# ---- data -------------------------------------------------------------------------------------------
def sink_threshold(corpus: Corpus, hook: str, factor: float = SINK_FACTOR) -> float | None:
    """`factor` x the median activation norm (positions >= 1 of the first shard); None if factor is 0."""
    if not factor:
        return None
    arr = corpus.read(corpus.shards()[0], ["pos", hook])
    x = arr[hook][arr["pos"] > 0].astype(np.float32)
    if not len(x):
        return None
    return float(np.median(np.linalg.norm(x, axis=1)) * factor)


def keep_rows(pos: np.ndarray, x: np.ndarray, skip_first: bool, max_norm: float | None) -> np.ndarray:
    """Rows that are not attention sinks: position > 0 (if `skip_first`) and norm <= `max_norm` (if set)."""
    keep = pos > 0 if skip_first else np.ones(len(pos), dtype=bool)
    if max_norm is not None:
        keep &= np.linalg.norm(x.astype(np.float32), axis=1) <= max_norm
    return keep


def batches(corpus: Corpus, hook: str, *, batch_tokens: int, tokens: int, epochs: int, seed: int,
            skip_first: bool = True, max_norm: float | None = None) -> Iterator[torch.Tensor]:
    """float32 batches of stored activations: shards in a seeded order per epoch, rows shuffled within a
    shard, attention sinks left out (`keep_rows`); stops after `tokens` rows."""
    shards = corpus.shards()
    rng = np.random.default_rng(seed)
    carry = np.zeros((0, corpus.sites[hook]), dtype=np.float16)
    sent = 0
    for _ in range(epochs):
        for si in rng.permutation(len(shards)):
            arr = corpus.read(shards[si], ["pos", hook])
            x = arr[hook][keep_rows(arr["pos"], arr[hook], skip_first, max_norm)]
            x = np.concatenate([carry, x[rng.permutation(len(x))]])
            n_full = len(x) // batch_tokens * batch_tokens
            for s in range(0, n_full, batch_tokens):
                take = min(batch_tokens, tokens - sent)
                yield torch.from_numpy(x[s:s + take].astype(np.float32))
                sent += take
                if sent >= tokens:
                    return
            carry = x[n_full:]
    if len(carry) and sent < tokens:
        yield torch.from_numpy(carry[: tokens - sent].astype(np.float32))


# ---- training ---------------------------------------------------------------------------------------
@dataclass
class TrainLog:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)


def train_sae(batches_: Iterator[torch.Tensor], d_in: int, *, expansion: int = 8, k: int = 32, seed: int = 0,
              lr: float | None = None, auxk_alpha: float = 0.0, dead_tokens: int = 100_000, log_every: int = 20,
              progress: Callable[[int], None] | None = None) -> tuple[Any, TrainLog, float]:
    """A trained `sparsify.SparseCoder`, its log and the learning rate used."""
    sp = sparsify()
    from schedulefree import ScheduleFreeWrapper

    torch.manual_seed(seed)
    cfg = sp.SparseCoderConfig(expansion_factor=expansion, k=k)
    sae = sp.SparseCoder(d_in, cfg, device="cpu", dtype=torch.float32)
    if k > sae.num_latents:
        raise InterpError(f"k={k} is more than the SAE's {sae.num_latents} latents")
    lr = lr or 5e-3 / math.sqrt(sae.num_latents / 2 ** 14)
    opt = ScheduleFreeWrapper(sp.sign_sgd.SignSGD([{"params": sae.parameters(), "lr": lr}]), momentum=0.95)
    opt.train()
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long)
    log = TrainLog()
    t0 = time.perf_counter()
    for x in batches_:
        if log.steps == 0:
            sae.b_dec.data = x.mean(0)
        sae.set_decoder_norm_to_unit_norm()
        dead = since_fired > dead_tokens if auxk_alpha > 0 else None
        out = sae(x, dead_mask=dead)
        loss = out.fvu + auxk_alpha * out.auxk_loss
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            since_fired += len(x)
            since_fired[out.latent_indices.flatten()] = 0
        log.steps += 1
        log.tokens += len(x)
        if log.steps % log_every == 0 or log.steps == 1:
            log.curve.append({"step": log.steps, "tokens": log.tokens, "fvu": float(out.fvu.detach()),
                              "dead_fraction": float((since_fired > dead_tokens).float().mean())})
        if progress is not None:
            progress(len(x))
    if log.steps == 0:
        raise InterpError("no training tokens: the corpus has no activations to train on")
    opt.eval()  # schedule-free: the averaged weights are the ones to keep (as the library saves them)
    log.seconds = time.perf_counter() - t0
    return sae.requires_grad_(False), log, lr


def weights_blobs(sae: Any) -> Blobs:
    """The SAE in the library's own on-disk format (`save_to_disk`), as artifact files under sae/."""
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_to_disk(tmp)
        return Blobs({f"{WEIGHTS_DIR}/{p.name}": p.read_bytes() for p in sorted(Path(tmp).iterdir())})


def load_weights(blobs: dict[str, bytes]) -> Any:
    """A `sparsify.SparseCoder` from its stored files (through the library's own loader)."""
    sp = sparsify()
    with tempfile.TemporaryDirectory() as tmp:
        for rel, content in blobs.items():
            (Path(tmp) / Path(rel).name).write_bytes(content)
        return sp.SparseCoder.load_from_disk(tmp).requires_grad_(False)


def dense_encoder(sae: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """x [n, d_in] -> latent activations [n, latents] (zeros outside each token's top k)."""

    def encode(x: torch.Tensor) -> torch.Tensor:
        out = sae.encode(x)
        z = torch.zeros(len(x), sae.num_latents)
        return z.scatter_(1, out.top_indices, out.top_acts.float())

    return encode


def reconstructor(sae: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """x [..., d_in] -> the SAE's reconstruction of x."""

    def recon(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        out = sae.encode(flat)
        return sae.decode(out.top_acts, out.top_indices).reshape(x.shape).to(x.dtype)

    return recon


# ---- evaluation -------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    n_tokens: int                  # evaluation tokens (positions the SAE sees)
    n_sinks: int                   # tokens left out as attention sinks (besides each document's first)
    fvu: float
    fvu_with_sinks: float          # FVU had the sink tokens been reconstructed too
    variance_explained: float
    l0: float
    dead: int
    dense: int
    ce_clean: float
    ce_sae: float
    ce_zero: float
    loss_recovered: float
    frequency: np.ndarray          # [latents] share of evaluation tokens each latent fires on

    def scalars(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "frequency"}


def heldout_batches(model: HookedModel, *, tokens: int, corpus: str = "mirror", split: str = "heldout",
                    max_len: int = 256, batch_tokens: int = 2048,
                    data_dir: str | os.PathLike | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(token ids [b, n] right-padded, lengths [b]) batches of held-out documents, `tokens` in all."""
    docs: list[list[int]] = []
    total = 0
    for doc in text_corpus(corpus, data_dir).documents(split):
        ids = model.tokenizer(doc.text, add_special_tokens=True)["input_ids"][:max_len][: tokens - total]
        if len(ids) < 2:
            continue
        docs.append(ids)
        total += len(ids)
        if total >= tokens:
            break
    if not docs:
        raise InterpError(f"no held-out text in corpus {corpus!r} (split {split!r})")
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    docs.sort(key=len)
    out, batch = [], []
    for ids in docs + [None]:
        if ids is None or (batch and (len(batch) + 1) * len(ids) > batch_tokens):
            n = max(len(b) for b in batch)
            t = torch.full((len(batch), n), pad, dtype=torch.long)
            for j, b in enumerate(batch):
                t[j, : len(b)] = torch.tensor(b)
            out.append((t, torch.tensor([len(b) for b in batch])))
            batch = []
        if ids is not None:
            batch.append(ids)
    return out


def _ce(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[float, int]:
    """(summed next-token cross-entropy over real positions, count)."""
    lp = torch.log_softmax(logits[:, :-1].float(), -1)
    nll = -lp.gather(-1, tokens[:, 1:, None])[..., 0]
    mask = torch.arange(tokens.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
    return float(nll[mask].sum()), int(mask.sum())


def _sites(act: torch.Tensor, skip_first: bool, max_norm: float | None) -> torch.Tensor:
    """[batch, pos] mask of the positions an SAE replaces: not position 0 (if `skip_first`), not a sink."""
    keep = torch.ones(act.shape[:2], dtype=torch.bool)
    if skip_first:
        keep[:, 0] = False
    if max_norm is not None:
        keep &= act.float().norm(dim=-1) <= max_norm
    return keep


@torch.no_grad()
def spliced_losses(model: HookedModel, hook: str, replace: Callable[[torch.Tensor], torch.Tensor],
                   data: list[tuple[torch.Tensor, torch.Tensor]], *, skip_first: bool = True,
                   max_norm: float | None = None) -> dict[str, float]:
    """Mean next-token CE of the clean model, with `replace(activation)` spliced in at `hook`, and with
    the activation zeroed, at the positions `_sites` selects (the others keep their clean activation)."""
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    count = 0

    def splice(fn: Callable[[torch.Tensor], torch.Tensor]):
        def hook_fn(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
            keep = _sites(act, skip_first, max_norm)
            out = act.clone()
            out[keep] = fn(act[keep])
            return out
        return hook_fn

    for tokens, lengths in data:
        for name, fn in (("clean", None), ("spliced", replace), ("zero", torch.zeros_like)):
            logits = model.logits(tokens) if fn is None else model.run_with_hooks(tokens, [(hook, splice(fn))])
            s, n = _ce(logits, tokens, lengths)
            sums[name] += s
        count += n
    return {k: v / count for k, v in sums.items()}


class _Var:
    """Running sum of squared errors and total variance of vectors."""

    def __init__(self) -> None:
        self.sse = self.sxx = 0.0
        self.sx: Any = 0.0
        self.n = 0

    def add(self, x: torch.Tensor, xh: torch.Tensor) -> None:
        self.sse += float((x - xh).pow(2).sum())
        self.sx = self.sx + x.sum(0, dtype=torch.float64)
        self.sxx += float(x.double().pow(2).sum())
        self.n += len(x)

    def fvu(self) -> float:
        return self.sse / (self.sxx - float((self.sx ** 2).sum()) / self.n) if self.n else float("nan")


@torch.no_grad()
def evaluate(model: HookedModel, sae: Any, hook: str, data: list[tuple[torch.Tensor, torch.Tensor]], *,
             skip_first: bool = True, max_norm: float | None = None) -> Evaluation:
    """FVU, L0, dead/dense latents and loss recovered of `sae` at `hook` on the batches `data`, leaving out
    position 0 (if `skip_first`) and tokens with an activation norm above `max_norm`."""
    kept, with_sinks = _Var(), _Var()
    l0 = 0
    fired = torch.zeros(sae.num_latents, dtype=torch.long)
    recon = reconstructor(sae)
    for tokens, lengths in data:
        _, cache = model.run_with_cache(tokens, [hook], need_logits=False)
        act = cache[hook]
        real = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]
        keep = _sites(act, skip_first, max_norm) & real
        other = _sites(act, skip_first, None) & real
        x = act[keep].float()
        out = sae.encode(x)
        kept.add(x, sae.decode(out.top_acts, out.top_indices))
        with_sinks.add(act[other].float(), recon(act[other].float()))
        active = out.top_acts > 0
        l0 += int(active.sum())
        fired += torch.bincount(out.top_indices[active], minlength=sae.num_latents)
    n = kept.n
    if n == 0:
        raise InterpError("no evaluation tokens left after leaving out the attention sinks; use more --tokens")
    fvu = kept.fvu()
    ce = spliced_losses(model, hook, recon, data, skip_first=skip_first, max_norm=max_norm)
    gap = ce["zero"] - ce["clean"]
    freq = (fired.double() / n).numpy()
    return Evaluation(n_tokens=n, n_sinks=with_sinks.n - n, fvu=fvu, fvu_with_sinks=with_sinks.fvu(),
                      variance_explained=1 - fvu, l0=l0 / n, dead=int((fired == 0).sum()),
                      dense=int((freq > DENSE_ABOVE).sum()), ce_clean=ce["clean"], ce_sae=ce["spliced"],
                      ce_zero=ce["zero"], loss_recovered=(ce["zero"] - ce["spliced"]) / gap if gap else float("nan"),
                      frequency=freq.astype(np.float32))


# ---- the artifact -----------------------------------------------------------------------------------
@register_kind("sae")
@dataclass
class SaeResult:
    meta: Meta
    corpus_id: str
    layer: int
    site: str                       # the hook name
    d_in: int
    n_latents: int
    k: int
    train_tokens: int
    steps: int
    seconds: float
    tokens_per_s: float
    curve: pd.DataFrame             # step, tokens, fvu, dead_fraction (training batches)
    weights: Blobs                  # sae/cfg.json, sae/sae.safetensors (sparsify's format)
    evaluation: dict[str, float] | None = None   # held-out Evaluation.scalars(), if evaluated
    frequency: np.ndarray | None = None          # [latents] firing frequency on the held-out tokens

    def summary(self) -> str:
        lines = [f"TopK SAE on {self.site}: {self.n_latents} latents (d_in {self.d_in}), k={self.k}; trained on "
                 f"{self.train_tokens:,} tokens of corpus {self.corpus_id} in {self.steps} steps, {self.seconds:.0f} s "
                 f"({self.tokens_per_s:,.0f} tokens/s); last training FVU {self.curve['fvu'].iloc[-1]:.3f}"]
        if self.evaluation:
            lines.append(describe_evaluation(self.evaluation))
        return "\n".join(lines)

    def sae(self) -> Any:
        return load_weights(self.weights)


def describe_evaluation(e: dict[str, float]) -> str:
    sinks = (f"; with the {int(e['n_sinks'])} sink token(s) in, FVU {e['fvu_with_sinks']:.3f}"
             if e.get("n_sinks") else "")
    return (f"held-out ({int(e['n_tokens']):,} tokens): variance explained {e['variance_explained']:.3f} (FVU {e['fvu']:.3f}"
            f"{sinks}), "
            f"L0 {e['l0']:.1f}, dead {int(e['dead'])}, dense {int(e['dense'])}; CE clean {e['ce_clean']:.3f}, "
            f"with SAE {e['ce_sae']:.3f}, zero-ablated {e['ce_zero']:.3f}: loss recovered {e['loss_recovered']:.1%}")


def load_sae(artifact_id: str, root: str | os.PathLike | None = None, model: HookedModel | None = None) -> SaeResult:
    """A stored `sae` artifact (InterpError if it is another kind or another model's)."""
    r = A.load(artifact_id, root)
    if r.meta.kind != "sae":
        raise InterpError(f"artifact {artifact_id} is a {r.meta.kind!r} artifact, not an SAE")
    if model is not None and r.meta.model.get("sha256") != model.ref.sha256:
        raise InterpError(f"SAE {artifact_id} was trained on {r.meta.model.get('spec')}, not {model.spec}")
    return r


def run(model: HookedModel, *, layer: int, site: str = "resid_post", corpus: str | None = None, expansion: int = 8,
        k: int = 32, tokens: int | None = None, epochs: int = 1, batch_tokens: int = 1024, seed: int = 0,
        lr: float | None = None, auxk_alpha: float = 0.0, eval_tokens: int = 4096, skip_first: bool = True,
        sink_factor: float = SINK_FACTOR,
        activations: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
        progress: bool = True, source: dict[str, Any] | None = None) -> SaeResult:
    """Train a TopK SAE on the stored activations at `site` of `layer`; evaluate it on held-out text."""
    hook = hook_name(model, site, layer)
    c = open_corpus(model, hook, corpus, activations)
    if eval_tokens:
        text_corpus("mirror", data_dir)   # fail before training, not after, when the held-out text is missing
    max_norm = sink_threshold(c, hook, sink_factor)
    available = c.n_tokens * epochs
    budget = min(tokens, available) if tokens else available
    if budget < 1:
        raise InterpError("token budget must be at least 1")
    bar = _bar(budget, progress)
    try:
        sae, log, lr_used = train_sae(batches(c, hook, batch_tokens=batch_tokens, tokens=budget, epochs=epochs, seed=seed,
                                              skip_first=skip_first, max_norm=max_norm),
                                      c.sites[hook], expansion=expansion, k=k, seed=seed, lr=lr, auxk_alpha=auxk_alpha,
                                      progress=bar.update)
    finally:
        bar.close()
    evaluation = freq = None
    if eval_tokens:
        ev = evaluate(model, sae, hook, heldout_batches(model, tokens=eval_tokens, data_dir=data_dir),
                      skip_first=skip_first, max_norm=max_norm)
        evaluation, freq = ev.scalars(), ev.frequency
    sp = sparsify()
    meta = Meta(kind="sae", model={"spec": model.spec, "sha256": model.ref.sha256, "checkpoint": str(model.ref.checkpoint)},
                prompts=[], tokens=[], source=source,
                params={"layer": layer, "site": hook, "corpus": c.id, "expansion": expansion, "k": k, "tokens": budget,
                        "epochs": epochs, "batch_tokens": batch_tokens, "seed": seed, "lr": lr_used,
                        "auxk_alpha": auxk_alpha, "optimizer": "signum (SignSGD + ScheduleFreeWrapper, momentum 0.95)",
                        "loss": "fvu", "skip_first": skip_first, "sink_factor": sink_factor, "max_norm": max_norm,
                        "eval_tokens": eval_tokens,
                        "eval_text": "mirror, held-out split", "library": f"eai-sparsify {sp.__version__}"})
    return SaeResult(meta=meta, corpus_id=c.id, layer=layer, site=hook, d_in=int(sae.d_in), n_latents=int(sae.num_latents),
                     k=k, train_tokens=log.tokens, steps=log.steps, seconds=round(log.seconds, 2),
                     tokens_per_s=log.tokens / log.seconds if log.seconds else 0.0, curve=pd.DataFrame(log.curve),
                     weights=weights_blobs(sae), evaluation=evaluation, frequency=freq)


def _bar(total: int, enabled: bool) -> Any:
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tok", unit_scale=True, desc="training SAE", file=sys.stderr, disable=not enabled)


def site_of(r: SaeResult) -> tuple[str, int]:
    return parse_hook(r.site)


TOOL = register_tool(Tool(
    name="sae", cli="sae train", run=run, prompt="none",
    help="train a TopK sparse autoencoder (EleutherAI sparsify) on a stored activation corpus, then evaluate it on "
         "held-out text: variance explained, L0, dead/dense latents, loss recovered with the SAE spliced in",
    args=(arg("--layer", type=int, required=True, help="the layer"),
          arg("--site", default="resid_post", help="activation site (default resid_post)"),
          arg("--corpus", help="activation corpus id (default: the newest of this model with the site)"),
          arg("--expansion", type=int_at_least(1), default=8, help="latents = expansion x width (default 8)"),
          arg("--k", type=int_at_least(1), default=32, help="active latents per token (default 32)"),
          arg("--tokens", type=int_at_least(1), help="training tokens (default: the whole corpus x --epochs)"),
          arg("--epochs", type=int_at_least(1), default=1, help="passes over the corpus (default 1)"),
          arg("--batch-tokens", type=int_at_least(1), default=1024, help="tokens per step (default 1024)"),
          arg("--lr", type=float_in(0, 1, low_open=True), help="learning rate (default: the library's 5e-3/sqrt(latents/2^14))"),
          arg("--auxk-alpha", type=float_in(0, 10), default=0.0, help="AuxK loss weight on dead latents (default 0, "
                                                                       "as the library)"),
          arg("--seed", type=int, default=0),
          arg("--eval-tokens", type=int_at_least(0), default=4096, help="held-out tokens to evaluate on (0: skip)"),
          arg("--sink-factor", type=float_in(0, 1e6), default=SINK_FACTOR,
              help="leave out tokens whose activation norm exceeds this x the median (attention sinks; 0: keep them; "
                   "default 10)"),
          arg("--activations", help=ACTIVATIONS_HELP),
          arg("--data-dir", help=DATA_HELP),
          arg("--no-progress", action="store_true", help="no progress bar")),
    from_cli=lambda a, p, m: dict(layer=a.layer, site=a.site, corpus=a.corpus, expansion=a.expansion, k=a.k,
                                  tokens=a.tokens, epochs=a.epochs, batch_tokens=a.batch_tokens, lr=a.lr,
                                  auxk_alpha=a.auxk_alpha, seed=a.seed, eval_tokens=a.eval_tokens,
                                  sink_factor=a.sink_factor,
                                  activations=a.activations, data_dir=a.data_dir,
                                  progress=not (a.no_progress or a.quiet)),
))
