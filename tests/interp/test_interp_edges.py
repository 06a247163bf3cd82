"""The edge graph and its patched forwards: exact end points, pruning, and EAP against an independent Taylor term."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.interp import circuit as C
from workbench.interp.edges import EdgePatcher, Graph, check_supported, on_path
from workbench.interp.errors import InterpError

ATOL = 1e-4


def test_graph_counts_smollm2_shape():
    g = Graph(30, 9, 3)
    # attention of layer l reads 1 + 10 l nodes into 9 q + 3 k + 3 v slots; its MLP reads 10 + 10 l; logits all 301
    assert g.n_up == 301 and g.n_slots == 30 * 16 + 1
    assert g.n_edges == sum(15 * (1 + 10 * l) + 10 + 10 * l for l in range(30)) + 301 == 70651
    a = g.allowed()
    assert not a[g.head(3, 0), g.attn_slots(3)].any()          # no edges between heads of one layer
    assert a[g.head(3, 0), g.mlp_slot(3)] and not a[g.mlp(3), g.mlp_slot(3)]
    assert g.slot_nodes()[g.attn_slots(2).start + 9] == [g.head(2, 0), g.head(2, 1), g.head(2, 2)]  # k of KV group 0


def _batches(model, task):
    patcher = EdgePatcher(model)
    batches = C.make_batches(model, task, batch_size=8)
    C.cache_batches(patcher, batches)
    return patcher, batches


def test_all_edges_is_clean_and_none_is_corrupt(tiny_hooked, tiny_task):
    patcher, batches = _batches(tiny_hooked, tiny_task)
    allowed = patcher.graph.allowed()
    for b in batches:
        rows = len(b.rows)
        with torch.no_grad():
            clean, corrupt = tiny_hooked.logits(b.clean), tiny_hooked.logits(b.corrupt)
        full = patcher.run(b.clean, b.corrupt_out, torch.zeros_like(allowed).expand(rows, -1, -1))
        empty = patcher.run(b.clean, b.corrupt_out, allowed.expand(rows, -1, -1))
        torch.testing.assert_close(full, clean, rtol=0, atol=ATOL)
        torch.testing.assert_close(empty, corrupt, rtol=0, atol=ATOL)
        # the node outputs add up to the residual stream the final norm reads
        _, cache = tiny_hooked.run_with_cache(b.clean, ["ln_final.hook_in"])
        torch.testing.assert_close(b.clean_out.sum(2), cache["ln_final.hook_in"], rtol=0, atol=ATOL)


def test_pruning_to_input_logit_paths_keeps_faithfulness(tiny_hooked, tiny_task):
    patcher, batches = _batches(tiny_hooked, tiny_task)
    g = patcher.graph
    scores = C.eap_scores(patcher, batches)
    for k in (3, 10, 30):
        kept = C.top_k(g, scores, k)
        path = on_path(g, kept)
        assert path.sum() <= kept.sum()
        assert C.circuit_metric(patcher, batches, kept) == pytest.approx(C.circuit_metric(patcher, batches, path),
                                                                       abs=ATOL)
    # an edge from a node nothing reaches is off every path
    lone = torch.zeros(g.n_up, g.n_slots, dtype=torch.bool)
    lone[g.head(1, 0), g.logits_slot] = True
    assert not on_path(g, lone).any()
    lone[0, g.attn_slots(1).start] = True  # input -> q of L1H0 makes it reachable
    assert on_path(g, lone).sum() == 2


def test_single_edge_exact_matches_a_patched_forward(tiny_hooked, tiny_task):
    patcher, batches = _batches(tiny_hooked, tiny_task)
    g = patcher.graph
    edges = [(0, g.logits_slot), (g.head(0, 1), g.mlp_slot(0)), (g.mlp(0), g.attn_slots(1).start + g.n_heads)]
    got = C.exact_edges(patcher, batches, [u for u, _ in edges], [s for _, s in edges], edges_per_forward=2)
    for (u, s), value in zip(edges, got):
        total = 0.0
        for b in batches:
            removed = torch.zeros(len(b.rows), g.n_up, g.n_slots, dtype=torch.bool)
            removed[:, u, s] = True
            total += float((b.metric(patcher.run(b.clean, b.corrupt_out, removed)) - b.clean_metric).sum())
        assert value == pytest.approx(total / 4, abs=ATOL)


# ---- EAP against the first-order Taylor term, computed apart from the edge machinery -------------------------
def taylor_terms(checkpoint, task, edges) -> list[float]:
    """d/dt of the mean metric when x_S += t (out_U[corrupt] - out_U[clean]), by autograd on a fresh HF model.

    Edges are ("input" | ("head", l, h) | ("mlp", l)) -> (("q", l, h) | ("k"/"v", l, g) | ("mlp", l) | "logits").
    Plain torch hooks on the HF modules; nothing from workbench.interp.edges.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(str(checkpoint), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    layers, cfg = hf.model.layers, hf.config
    n_heads = cfg.num_attention_heads
    d_head = cfg.hidden_size // n_heads

    def node_outputs(ids):
        store, handles = {}, [hf.model.embed_tokens.register_forward_hook(lambda m, i, o: store.__setitem__("input", o))]
        for l, layer in enumerate(layers):
            handles.append(layer.self_attn.o_proj.register_forward_pre_hook(
                lambda m, i, l=l: store.__setitem__(("z", l), i[0])))
            handles.append(layer.mlp.register_forward_hook(lambda m, i, o, l=l: store.__setitem__(("mlp", l), o)))
        with torch.no_grad():
            hf(ids)
        for h in handles:
            h.remove()
        return store

    def node(store, up):
        if up == "input":
            return store["input"]
        if up[0] == "mlp":
            return store[("mlp", up[1])]
        _, l, h = up
        w = layers[l].self_attn.o_proj.weight[:, h * d_head:(h + 1) * d_head]
        return store[("z", l)][..., h * d_head:(h + 1) * d_head] @ w.T

    out = []
    for up, slot in edges:
        total = 0.0
        for ex in task.examples:
            clean = torch.tensor([tok(ex.clean)["input_ids"]])
            corrupt = torch.tensor([tok(ex.corrupt)["input_ids"]])
            diff = node(node_outputs(corrupt), up) - node(node_outputs(clean), up)
            t = torch.zeros((), requires_grad=True)
            handles = _inject(layers, hf.model.norm, slot, t * diff, d_head)
            last = hf(clean).logits[0, -1]
            metric = sum(w * last[i] for i, w in zip(ex.ids, ex.weights))
            (grad,) = torch.autograd.grad(metric, t)
            total += float(grad)
            for h in handles:
                h.remove()
        out.append(total / len(task.examples))
    return out


def _inject(layers, final_norm, slot, delta, d_head):
    """Torch hooks adding `delta` to one input: the final norm's, an MLP norm's, or one head's / KV head's q/k/v."""
    def add(m, i, delta=delta):
        return (i[0] + delta,)

    if slot == "logits":
        return [final_norm.register_forward_pre_hook(add)]
    if slot[0] == "mlp":
        return [layers[slot[1]].post_attention_layernorm.register_forward_pre_hook(add)]
    which, l, j = slot
    layer, seen = layers[l], {}
    proj = getattr(layer.self_attn, f"{which}_proj")
    cols = slice(j * d_head, (j + 1) * d_head)

    def swap(m, i, o):
        o = o.clone()
        o[..., cols] = layer.input_layernorm(seen["x"] + delta) @ proj.weight[cols].T
        return o
    return [layer.input_layernorm.register_forward_pre_hook(lambda m, i: seen.__setitem__("x", i[0])),
            proj.register_forward_hook(swap)]


def _edge_index(g, up, slot):
    u = 0 if up == "input" else g.mlp(up[1]) if up[0] == "mlp" else g.head(up[1], up[2])
    if slot == "logits":
        return u, g.logits_slot
    if slot[0] == "mlp":
        return u, g.mlp_slot(slot[1])
    start = g.attn_slots(slot[1]).start
    return u, start + {"q": 0, "k": g.n_heads, "v": g.n_heads + g.n_kv}[slot[0]] + slot[2]


def _check_eap(model, task, edges, rtol):
    patcher, batches = _batches(model, task)
    scores = C.eap_scores(patcher, batches)
    expected = taylor_terms(model.ref.checkpoint, task, edges)
    got = [float(scores[_edge_index(patcher.graph, u, s)]) for u, s in edges]
    assert any(abs(e) > 1e-6 for e in expected)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-6)


TINY_EDGES = [("input", ("q", 0, 1)), ("input", ("k", 0, 1)), (("head", 0, 2), ("v", 1, 0)),
              (("head", 0, 3), ("mlp", 0)), (("mlp", 0), ("q", 1, 3)), (("head", 1, 0), "logits"), ("input", "logits")]


def test_eap_equals_independent_taylor_term_tiny(tiny_hooked, tiny_task):
    _check_eap(tiny_hooked, tiny_task, TINY_EDGES, rtol=1e-3)


def test_eap_ig_with_one_step_is_the_gradient_at_the_corrupted_input(tiny_hooked, tiny_task):
    """alpha = k/steps, k = 0..steps-1: one step reads the gradient at the corrupted input, not EAP's clean one."""
    patcher, batches = _batches(tiny_hooked, tiny_task)
    ig1 = C.eap_ig_scores(patcher, batches, steps=1)
    eap = C.eap_scores(patcher, batches)
    assert not torch.allclose(ig1, eap)
    total = torch.zeros_like(eap)
    for b in batches:
        total += patcher.slot_scores(b.clean, b.corrupt_out - b.clean_out, b.metric, embed=b.corrupt_out[:, :, 0])[0]
    torch.testing.assert_close(ig1, total / 4)
    many = C.eap_ig_scores(patcher, batches, steps=4)
    assert many.shape == eap.shape and torch.isfinite(many).all()


def test_sandwich_norm_models_are_refused():
    from types import SimpleNamespace

    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    gemma = SimpleNamespace(hf=Gemma3ForCausalLM(cfg), spec="tiny-gemma3")
    with pytest.raises(InterpError, match="sandwich norms"):
        check_supported(gemma)


@pytest.mark.slow
def test_eap_equals_independent_taylor_term_smollm2(smol_hooked):
    from workbench.interp.circuit_tasks import load_task

    task = load_task("ioi", smol_hooked, 2, seed=1)
    edges = [("input", ("q", 5, 4)), (("head", 3, 1), ("k", 9, 2)), (("head", 10, 7), ("v", 20, 1)),
             (("mlp", 0), ("mlp", 12)), (("head", 25, 3), "logits"), (("mlp", 28), "logits")]
    _check_eap(smol_hooked, task, edges, rtol=2e-3)
