"""Artifact store: round trip to typed objects, atomic layout, id validation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.interp import artifacts
from workbench.interp.errors import ArtifactError


def test_attention_artifact_round_trip(tiny_hooked, artifacts_root):
    from workbench.interp.attention import AttentionResult, analyze

    res = analyze(tiny_hooked, "The quick brown fox", seq_len=8, n_seqs=2,
                  source={"run_id": "r1", "task": "t", "doc_id": "3", "store": "/x"})
    aid = artifacts.save(res)
    path = artifacts_root / aid
    assert sorted(p.name for p in path.iterdir()) == ["arrays.safetensors", "head_scores.parquet", "manifest.json"]
    assert not any((artifacts_root / ".partial").iterdir())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["kind"] == "attention" and manifest["model"]["spec"].startswith("hf:")
    assert manifest["tokens"] == [tiny_hooked.token_strings(tiny_hooked.tokenize("The quick brown fox")[0])]
    assert manifest["source"]["run_id"] == "r1" and "torch" in manifest["versions"]
    back = artifacts.load(aid)
    assert isinstance(back, AttentionResult)
    np.testing.assert_array_equal(back.patterns, res.patterns)
    pd.testing.assert_frame_equal(back.head_scores, res.head_scores)
    assert back.layers == res.layers and back.meta.id == aid and back.meta.params == res.meta.params
    assert [m["id"] for m in artifacts.list_artifacts()] == [aid]


@pytest.mark.parametrize("bad", ["../etc", "..", "a/b", "", "/abs", ".hidden", "x/../../y"])
def test_bad_artifact_ids_rejected(bad, artifacts_root):
    with pytest.raises(ArtifactError, match="invalid artifact id"):
        artifacts.load(bad)


def test_missing_artifact(artifacts_root):
    with pytest.raises(ArtifactError, match="no artifact"):
        artifacts.load("attention-nothing-here")


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "env"))
    assert artifacts.artifacts_dir() == tmp_path / "env"
    assert artifacts.artifacts_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("WORKBENCH_ARTIFACTS")
    monkeypatch.chdir(tmp_path)
    assert artifacts.artifacts_dir() == tmp_path / "workbench-artifacts"


def test_every_tool_kind_is_registered():
    assert set(artifacts.kinds()) == {"attention", "patching", "probe", "attribution", "logit_lens", "drift",
                                      "activations", "neurons", "sae", "sae_eval", "features", "top_units",
                                      "failure_features"}
