"""Interpretability toolkit: one hook layer over TransformerLens' bridge, tools that each save an artifact.

`hooks` loads a model spec into a `HookedModel`; each tool module (`attention`, `patching`, `probe`,
`attribution`, `logit_lens`, `drift`, `trace`, `circuit`; on stored activation corpora `collect`, `neurons`,
`sae`, `sae_eval`, `features`; linked to eval samples `top_units`, `failure_features`) has one entry point,
`run`, returning a typed result that `artifacts` stores.
"""
from __future__ import annotations
