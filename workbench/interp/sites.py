"""Activation sites the corpus tools read: a short name (`resid_post`) -> the TransformerLens hook of a layer.

`mlp_neurons` is the MLP's hidden activation, the input of its output projection (for a gated MLP:
act(gate) * up), i.e. TransformerLens' `blocks.{l}.mlp.hook_post`; its units are the model's neurons.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.interp.errors import InterpError
from workbench.registry import Registry


@dataclass(frozen=True)
class Site:
    name: str
    hook: str                          # with {layer}
    width: Callable[[Any], int]        # HookedModel -> units per token
    space: str                         # "residual": d_model vectors; "neurons": rows of the MLP output weight


SITES: Registry[Site] = Registry("activation site", error=InterpError)


def _d_model(m: Any) -> int:
    return m.d_model


def _d_mlp(m: Any) -> int:
    return int(m.hf.config.intermediate_size)


for _site in (Site("resid_pre", "blocks.{layer}.hook_resid_pre", _d_model, "residual"),
              Site("resid_mid", "blocks.{layer}.hook_resid_mid", _d_model, "residual"),
              Site("resid_post", "blocks.{layer}.hook_resid_post", _d_model, "residual"),
              Site("attn_out", "blocks.{layer}.hook_attn_out", _d_model, "residual"),
              Site("mlp_out", "blocks.{layer}.hook_mlp_out", _d_model, "residual"),
              Site("mlp_neurons", "blocks.{layer}.mlp.hook_post", _d_mlp, "neurons")):
    SITES.register(_site.name, _site)


def check_layers(model: Any, layers: Sequence[int]) -> list[int]:
    """The layers, or InterpError naming the first out of range."""
    if not layers:
        raise InterpError("no layer given (--layers L[,L...])")
    for l in layers:
        if not 0 <= l < model.n_layers:
            raise InterpError(f"layer {l} is out of range: {model.spec} has {model.n_layers} layers (0-{model.n_layers - 1})")
    return sorted(set(layers))


def hook_name(model: Any, site: str, layer: int) -> str:
    """The hook name of `site` at `layer` (InterpError for an unknown site or a layer out of range)."""
    check_layers(model, [layer])
    return SITES.get(site).hook.format(layer=layer)


def parse_hook(hook: str) -> tuple[str, int]:
    """(site, layer) of a hook name this module produces."""
    for e in SITES.entries():
        prefix, _, suffix = e.obj.hook.partition("{layer}")
        if hook.startswith(prefix) and hook.endswith(suffix):
            middle = hook[len(prefix):len(hook) - len(suffix)]
            if middle.isdigit():
                return e.name, int(middle)
    raise InterpError(f"{hook!r} is not a known activation site")


__all__ = ["SITES", "Site", "check_layers", "hook_name", "parse_hook"]
