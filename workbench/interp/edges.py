"""The edge-level graph of a decoder's residual stream, and forwards with chosen edges patched.

Nodes that write to the residual stream ("upstream"): the input embedding, every attention head, every MLP.
Inputs that read it ("slots"): each head's query input, each key/value head's key and value inputs, each
MLP's input and the logits. U -> S is an edge when U writes before S reads: a layer's attention reads the
input and every head and MLP of earlier layers; its MLP also reads that layer's heads; the logits read all.

Grouped-query attention (SmolLM2: 9 query heads, 3 KV heads): the model computes one key and one value per
KV head, shared by the query heads of its group, so an edge into `k`/`v` is an edge into a KV group's key or
value input and patching it changes what every head of the group reads. That is the finest intervention the
model's own computation allows; EAP libraries that "ungroup" GQA give each query head a private K/V copy
(3x the k/v edges), an intervention on a different, equivalent model.

A patched forward runs the clean prompt and gives each slot
    x_S = resid_S + sum over removed edges U -> S of (out_U[corrupt] - out_U[this run]),
so a removed edge carries the corrupted prompt's value of its upstream node. Every edge kept is the clean
run, none kept the corrupted run (to float rounding: per-slot q/k/v are recomputed with the layer's own norm
and projection weights). With every edge kept and zero-valued leaves added at the slots, one backward gives
d metric / d x_S for every slot at once: the gradients EAP and EAP-IG need.

Needs a pre-norm decoder whose heads and MLP add straight into the residual stream (Llama, Mistral, Qwen2,
SmolLM2). Gemma 3 normalises the attention and MLP outputs before adding them (sandwich norms), so a head's
contribution to the stream is not its own: refused.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.interp.errors import InterpError
from workbench.interp.hooks import HookedModel


@dataclass(frozen=True)
class Graph:
    """Node and slot indexing for `n_layers` layers of `n_heads` query heads and `n_kv` KV heads."""

    n_layers: int
    n_heads: int
    n_kv: int

    # upstream nodes: input, then per layer its heads and its MLP
    @property
    def n_up(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    def head(self, layer: int, h: int) -> int:
        return 1 + layer * (self.n_heads + 1) + h

    def mlp(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    def up_before_attn(self, layer: int) -> int:
        """Upstream nodes [0, this) are read by layer `layer`'s attention."""
        return 1 + layer * (self.n_heads + 1)

    def up_before_mlp(self, layer: int) -> int:
        return self.up_before_attn(layer) + self.n_heads

    # slots: per layer q per head, k per KV head, v per KV head, the MLP input; then the logits
    @property
    def slots_per_layer(self) -> int:
        return self.n_heads + 2 * self.n_kv + 1

    @property
    def n_slots(self) -> int:
        return self.n_layers * self.slots_per_layer + 1

    def attn_slots(self, layer: int) -> slice:
        start = layer * self.slots_per_layer
        return slice(start, start + self.n_heads + 2 * self.n_kv)

    def mlp_slot(self, layer: int) -> int:
        return layer * self.slots_per_layer + self.n_heads + 2 * self.n_kv

    @property
    def logits_slot(self) -> int:
        return self.n_layers * self.slots_per_layer

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv

    def allowed(self) -> torch.Tensor:
        """[n_up, n_slots] bool: which (upstream, slot) pairs are edges."""
        a = torch.zeros(self.n_up, self.n_slots, dtype=torch.bool)
        for l in range(self.n_layers):
            a[: self.up_before_attn(l), self.attn_slots(l)] = True
            a[: self.up_before_mlp(l), self.mlp_slot(l)] = True
        a[:, self.logits_slot] = True
        return a

    @property
    def n_edges(self) -> int:
        return int(self.allowed().sum())

    def up_names(self) -> list[str]:
        names = ["input"]
        for l in range(self.n_layers):
            names += [f"a{l}.h{h}" for h in range(self.n_heads)] + [f"m{l}"]
        return names

    def slot_names(self) -> list[str]:
        names = []
        for l in range(self.n_layers):
            names += [f"a{l}.h{h}.q" for h in range(self.n_heads)]
            names += [f"a{l}.kv{g}.k" for g in range(self.n_kv)] + [f"a{l}.kv{g}.v" for g in range(self.n_kv)]
            names.append(f"m{l}")
        return names + ["logits"]

    def slot_nodes(self) -> list[list[int]]:
        """Upstream-node indices each slot feeds ([] for the logits): a KV slot feeds its group's heads."""
        out: list[list[int]] = []
        gs = self.group_size
        for l in range(self.n_layers):
            out += [[self.head(l, h)] for h in range(self.n_heads)]
            kv = [[self.head(l, h) for h in range(g * gs, (g + 1) * gs)] for g in range(self.n_kv)]
            out += kv + kv
            out.append([self.mlp(l)])
        return out + [[]]

    def node_slots(self) -> list[list[int]]:
        """The slots each upstream node reads (none for the input)."""
        reads: list[list[int]] = [[] for _ in range(self.n_up)]
        for s, nodes in enumerate(self.slot_nodes()):
            for u in nodes:
                reads[u].append(s)
        return reads

    def layer_of_up(self) -> np.ndarray:
        return np.array([-1] + [l for l in range(self.n_layers) for _ in range(self.n_heads + 1)])

    def layer_of_slot(self) -> np.ndarray:
        return np.array([l for l in range(self.n_layers) for _ in range(self.slots_per_layer)] + [self.n_layers])


def on_path(graph: Graph, kept: torch.Tensor) -> torch.Tensor:
    """The kept edges on some input -> logits path of kept edges ([n_up, n_slots] bool).

    A kept edge off every such path changes nothing: a node none of whose inputs is reached from the input
    computes exactly its corrupted output, and a node that reaches no logits only feeds removed edges, which
    carry its corrupted value anyway. So pruning to these edges leaves the faithfulness unchanged.
    """
    kept = kept.clone()
    node_slots = graph.node_slots()
    alive_in = torch.zeros(graph.n_up, dtype=torch.bool)
    alive_in[0] = True
    for u in range(1, graph.n_up):  # upstream order is topological
        alive_in[u] = any(bool((kept[:, s] & alive_in).any()) for s in node_slots[u])
    slot_out = torch.zeros(graph.n_slots, dtype=torch.bool)
    slot_out[graph.logits_slot] = True
    alive_out = torch.zeros(graph.n_up, dtype=torch.bool)
    for u in range(graph.n_up - 1, -1, -1):
        alive_out[u] = bool((kept[u] & slot_out).any())
        if alive_out[u]:
            for s in node_slots[u]:
                slot_out[s] = True
    # a slot is live when some node it feeds reaches the logits (set above), the logits always
    return kept & alive_in[:, None] & slot_out[None, :] & alive_out[:, None]


def check_supported(model: HookedModel) -> None:
    """InterpError unless the model's heads and MLPs add straight into the residual stream."""
    layers = model.hf.get_decoder().layers
    first = layers[0]
    attn = getattr(first, "self_attn", None)
    needed = ("input_layernorm", "post_attention_layernorm", "mlp")
    sandwich = [n for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm") if hasattr(first, n)]
    ok = (all(hasattr(first, n) for n in needed) and attn is not None and not sandwich
          and all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
          and getattr(attn.o_proj, "bias", None) is None)
    if not ok:
        kind = getattr(model.hf.config, "model_type", type(model.hf).__name__)
        why = ("it normalises attention and MLP outputs before adding them (sandwich norms), so a head's "
               "contribution to the residual stream is not its own" if sandwich else
               "its layers are not Llama-style (input_layernorm, q/k/v/o_proj without output bias, "
               "post_attention_layernorm, mlp)")
        raise InterpError(f"circuit discovery needs a pre-norm decoder whose heads and MLPs add straight into "
                          f"the residual stream; {model.spec} ({kind}) does not: {why}")


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The HF module itself, not the bridge's wrapper (whose hooks must not fire on per-slot inputs)."""
    return getattr(module, "original_component", module)


class EdgePatcher:
    """Runs a HookedModel with edges of its Graph patched, or with gradients at every slot."""

    def __init__(self, model: HookedModel) -> None:
        check_supported(model)
        self.model = model
        cfg = model.hf.config
        n_kv = int(getattr(cfg, "num_key_value_heads", None) or model.n_heads)
        self.graph = Graph(model.n_layers, model.n_heads, n_kv)
        self.d_head = int(model.bridge.cfg.d_head)
        H, G, dh = model.n_heads, n_kv, self.d_head
        self.layers = []
        for layer in model.hf.get_decoder().layers:
            a = layer.self_attn
            bias = {p: (None if getattr(a, f"{p}_proj").bias is None else getattr(a, f"{p}_proj").bias.detach())
                    for p in "qkv"}
            self.layers.append(dict(
                ln1=_unwrapped(layer.input_layernorm),
                wq=a.q_proj.weight.detach().view(H, dh, -1), bq=None if bias["q"] is None else bias["q"].view(H, dh),
                wk=a.k_proj.weight.detach().view(G, dh, -1), bk=None if bias["k"] is None else bias["k"].view(G, dh),
                wv=a.v_proj.weight.detach().view(G, dh, -1), bv=None if bias["v"] is None else bias["v"].view(G, dh),
                wo=a.o_proj.weight.detach().view(-1, H, dh)))

    # ---- pieces shared by both kinds of forward ----------------------------------------------------
    def _project(self, layer: int, which: str, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """q/k/v from per-slot residuals x [b, p, n, d]: the layer's own norm, then each slot's projection."""
        w = self.layers[layer]
        out = torch.einsum("bpnd,ned->bpne", w["ln1"](x), w[f"w{which}"])
        if w[f"b{which}"] is not None:
            out = out + w[f"b{which}"]
        return out.reshape(like.shape).to(like.dtype)

    def _head_out(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """Each head's write to the residual stream [b, p, H, d] from hook_z [b, p, H, d_head]."""
        return torch.einsum("bphe,dhe->bphd", z, self.layers[layer]["wo"])

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        H, G = self.graph.n_heads, self.graph.n_kv
        return x[:, :, :H], x[:, :, H:H + G], x[:, :, H + G:H + 2 * G]

    # ---- plain forward recording every node's output ---------------------------------------------
    @torch.no_grad()
    def node_outputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, outputs [b, p, n_up, d]) of an unpatched forward."""
        g = self.graph
        out = torch.zeros(*tokens.shape, g.n_up, self.model.d_model)

        def put(index: Any):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                out[:, :, index] = t
                return t
            return hook

        def heads(layer: int):
            def hook(z: torch.Tensor, hook: Any = None) -> torch.Tensor:
                out[:, :, g.head(layer, 0):g.head(layer, 0) + g.n_heads] = self._head_out(layer, z)
                return z
            return hook

        hooks = [("blocks.0.hook_resid_pre", put(0))]
        for l in range(g.n_layers):
            hooks += [(f"blocks.{l}.attn.hook_z", heads(l)), (f"blocks.{l}.hook_mlp_out", put(g.mlp(l)))]
        logits = self.model.run_with_hooks(tokens, hooks)
        return logits, out

    # ---- patched forward -------------------------------------------------------------------------
    def read_points(self) -> list[tuple[int, slice]]:
        """(upstream nodes read, slots) of each place the stream is read: per layer attention, MLP; the logits."""
        g = self.graph
        out = []
        for l in range(g.n_layers):
            out += [(g.up_before_attn(l), g.attn_slots(l)), (g.up_before_mlp(l), slice(g.mlp_slot(l), g.mlp_slot(l) + 1))]
        return out + [(g.n_up, slice(g.logits_slot, g.logits_slot + 1))]

    def corrupt_residuals(self, corrupt: torch.Tensor) -> torch.Tensor:
        """[prompts, p, points, d]: the corrupted residual stream (sum of node outputs) at each read point."""
        points = self.read_points()
        out = torch.empty(*corrupt.shape[:2], len(points), corrupt.shape[-1])
        acc, done = torch.zeros_like(corrupt[:, :, 0]), 0
        for i, (n_before, _) in enumerate(points):
            acc = acc + corrupt[:, :, done:n_before].sum(2)
            done = n_before
            out[:, :, i] = acc
        return out

    @torch.no_grad()
    def run(self, tokens: torch.Tensor, corrupt: torch.Tensor, removed: torch.Tensor,
            prompt_of_row: torch.Tensor | None = None, corrupt_resid: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the clean `tokens` [rows, p] with the `removed` [rows, n_up, n_slots] edges patched.

        `corrupt` [prompts, p, n_up, d] holds the corrupted prompts' node outputs; row r is prompt
        `prompt_of_row[r]` (default: row r is prompt r), so many masks can share one prompt's cache.
        Each read point sums over whichever is sparser: the removed edges, or the kept ones, using
        sum over all upstream U of (out_U[corrupt] - out_U[run]) = resid[corrupt] - resid[run] there.
        """
        g = self.graph
        rows = tokens.shape[0]
        prompt_of_row = torch.arange(rows) if prompt_of_row is None else prompt_of_row
        allowed = g.allowed()
        removed = removed & allowed
        plans = []                                              # per read point: None or (kept?, nodes, mask)
        for n_before, slots in self.read_points():
            rem = removed[:, :n_before, slots]
            n_rem = int(rem.sum())
            if n_rem == 0:
                plans.append(None)
                continue
            kept = allowed[None, :n_before, slots] & ~rem
            use_kept = int(kept.sum()) < n_rem
            m = kept if use_kept else rem
            nodes = m.any(dim=2).any(dim=0).nonzero().flatten()
            plans.append((use_kept, nodes, m[:, nodes].to(corrupt.dtype)))
        if all(p is None for p in plans):
            return self.model.logits(tokens)
        needed = sorted({int(u) for p in plans if p is not None for u in p[1]})
        pos = {u: j for j, u in enumerate(needed)}
        c_rows = corrupt[:, :, needed][prompt_of_row]                          # [rows, p, n, d]
        actual = torch.zeros_like(c_rows)
        if any(p is not None and p[0] for p in plans):
            resid = (self.corrupt_residuals(corrupt) if corrupt_resid is None else corrupt_resid)[prompt_of_row]
        state: dict[str, Any] = {}

        def delta(point: int, x: torch.Tensor) -> torch.Tensor | None:
            plan = plans[point]
            if plan is None:
                return None
            use_kept, nodes, m = plan
            idx = [pos[int(u)] for u in nodes]
            out = torch.einsum("bpnd,bns->bpsd", c_rows[:, :, idx] - actual[:, :, idx], m) if idx else 0.0
            if use_kept:
                out = (resid[:, :, point] - x)[:, :, None, :].expand(-1, -1, m.shape[2], -1) - out
            return out

        def record(u: int, value: torch.Tensor) -> None:
            if u in pos:
                actual[:, :, pos[u]] = value

        def resid_pre(layer: int):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                if layer == 0:
                    record(0, t)
                state["x"] = t
                state["attn"] = delta(2 * layer, t)
                return t
            return hook

        def project(layer: int, which: str):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                if state["attn"] is None:
                    return t
                part = dict(zip("qkv", self._split(state["attn"])))[which]
                return self._project(layer, which, state["x"][:, :, None, :] + part, t)
            return hook

        def heads(layer: int):
            def hook(z: torch.Tensor, hook: Any = None) -> torch.Tensor:
                first = g.head(layer, 0)
                if any(u in pos for u in range(first, first + g.n_heads)):
                    out = self._head_out(layer, z)
                    for h in range(g.n_heads):
                        record(first + h, out[:, :, h])
                return z
            return hook

        def add(point: int):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                d = delta(point, t)
                return t if d is None else t + d[:, :, 0]
            return hook

        def mlp_out(layer: int):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                record(g.mlp(layer), t)
                return t
            return hook

        hooks = []
        for l in range(g.n_layers):
            hooks += [(f"blocks.{l}.hook_resid_pre", resid_pre(l))]
            hooks += [(f"blocks.{l}.attn.{w}.hook_out", project(l, w)) for w in "qkv"]
            hooks += [(f"blocks.{l}.attn.hook_z", heads(l)), (f"blocks.{l}.ln2.hook_in", add(2 * l + 1)),
                      (f"blocks.{l}.hook_mlp_out", mlp_out(l))]
        hooks.append(("ln_final.hook_in", add(2 * g.n_layers)))
        return self.model.run_with_hooks(tokens, hooks)

    # ---- gradients at every slot -----------------------------------------------------------------
    def slot_scores(self, tokens: torch.Tensor, diff: torch.Tensor, metric: Callable[[torch.Tensor], torch.Tensor],
                    embed: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """(sum over rows of diff_U . d metric / d x_S as [n_up, n_slots], summed metric) of one forward.

        Every edge is kept; `embed` replaces the input embedding (EAP-IG's interpolated inputs). `diff`
        [rows, p, n_up, d] is out_U[corrupt] - out_U[clean]; `metric(logits)` returns one value per row.
        """
        g = self.graph
        rows, n_pos = tokens.shape
        d_model = self.model.d_model
        leaves_attn = [torch.zeros(rows, n_pos, g.n_heads + 2 * g.n_kv, d_model, requires_grad=True)
                       for _ in range(g.n_layers)]
        leaves_mlp = [torch.zeros(rows, n_pos, d_model, requires_grad=True) for _ in range(g.n_layers)]
        leaf_logits = torch.zeros(rows, n_pos, d_model, requires_grad=True)
        state: dict[str, Any] = {}

        def resid_pre(layer: int):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                if layer == 0 and embed is not None:
                    t = embed
                state["x"] = t
                return t
            return hook

        def project(layer: int, which: str):
            def hook(t: torch.Tensor, hook: Any = None) -> torch.Tensor:
                part = dict(zip("qkv", self._split(leaves_attn[layer])))[which]
                return self._project(layer, which, state["x"][:, :, None, :] + part, t)
            return hook

        def add(leaf: torch.Tensor):
            return lambda t, hook=None: t + leaf

        hooks = []
        for l in range(g.n_layers):
            hooks += [(f"blocks.{l}.hook_resid_pre", resid_pre(l))]
            hooks += [(f"blocks.{l}.attn.{w}.hook_out", project(l, w)) for w in "qkv"]
            hooks += [(f"blocks.{l}.ln2.hook_in", add(leaves_mlp[l]))]
        hooks.append(("ln_final.hook_in", add(leaf_logits)))
        with torch.enable_grad():
            value = metric(self.model.run_with_hooks(tokens, hooks)).sum()
            grads = torch.autograd.grad(value, [*leaves_attn, *leaves_mlp, leaf_logits])
        scores = torch.zeros(g.n_up, g.n_slots)
        flat = diff.reshape(rows * n_pos, g.n_up, d_model)

        def contract(n_before: int, grad: torch.Tensor) -> torch.Tensor:
            # sum over rows, positions and d_model of diff[.., u, :] * grad[.., s, :]
            return torch.einsum("xud,xsd->us", flat[:, :n_before], grad.reshape(rows * n_pos, -1, d_model))

        for l in range(g.n_layers):
            scores[: g.up_before_attn(l), g.attn_slots(l)] = contract(g.up_before_attn(l), grads[l])
            scores[: g.up_before_mlp(l), g.mlp_slot(l)] = contract(g.up_before_mlp(l), grads[g.n_layers + l])[:, 0]
        scores[:, g.logits_slot] = contract(g.n_up, grads[-1])[:, 0]
        return scores, float(value.detach())


def edge_table(graph: Graph, scores: dict[str, torch.Tensor]) -> Any:
    """One row per edge: upstream, downstream slot, their layers, and each method's score."""
    import pandas as pd

    allowed = graph.allowed()
    u_idx, s_idx = allowed.nonzero(as_tuple=True)
    up, slots = graph.up_names(), graph.slot_names()
    lu, ls = graph.layer_of_up(), graph.layer_of_slot()
    u_np, s_np = u_idx.numpy(), s_idx.numpy()
    table = pd.DataFrame({"upstream": [up[i] for i in u_np], "downstream": [slots[i] for i in s_np],
                          "up_index": u_np.astype(np.int32), "slot_index": s_np.astype(np.int32),
                          "up_layer": lu[u_np].astype(np.int16), "down_layer": ls[s_np].astype(np.int16)})
    for name, m in scores.items():
        table[name] = m[u_idx, s_idx].numpy().astype(np.float64)
    return table


__all__ = ["EdgePatcher", "Graph", "check_supported", "edge_table", "on_path"]
