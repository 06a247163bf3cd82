"""The one registry type behind every extension point."""
from __future__ import annotations

import pytest

from workbench.errors import WorkbenchError
from workbench.registry import Registry


def _a() -> str:
    return "a"


def _b() -> str:
    return "b"


def test_duplicates_are_refused_but_a_reimport_is_the_same_entry():
    reg: Registry = Registry("widget")
    reg.register("one", _a)
    reg.register("one", _a)  # the same function again (a module re-import) is not a conflict
    with pytest.raises(ValueError, match="widget 'one' is already registered by .*_a"):
        reg.register("one", _b)
    assert reg.get("one") is _a and reg["one"] is _a


def test_unknown_names_suggest_close_ones():
    reg: Registry = Registry("widget")
    reg.register("attention", _a, help="patterns")
    with pytest.raises(WorkbenchError, match="unknown widget 'atention'; did you mean attention"):
        reg.get("atention")
    with pytest.raises(WorkbenchError, match="known: attention"):
        reg.get("zzz")
    assert reg.entries()[0].help == "patterns"


@pytest.mark.parametrize("module, registry, expected", [
    ("workbench.eval.models", "BACKENDS", {"gguf", "hf", "int8", "llamacpp", "openai"}),
    ("workbench.commands", "COMMANDS", {"eval", "runs", "compare", "gate", "models", "tasks", "interp", "artifacts",
                                        "dashboard", "contamination"}),
    ("workbench.interp.artifacts", "KINDS", {"attention", "patching", "probe", "attribution", "logit_lens", "drift"}),
    ("workbench.scoring.refusal", "JUDGES", {"keyword", "model"}),
    ("workbench.scoring.aggregates", "AGGREGATES", {"ece", "selective_acc@0.5"}),
])
def test_discovery_finds_every_module_of_the_package(module, registry, expected):
    """Adding a backend, command, artifact kind or judge is one new file: nothing lists the modules by hand."""
    import importlib

    reg = getattr(importlib.import_module(module), registry)
    assert expected <= set(reg.names())
