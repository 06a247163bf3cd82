"""Artifact store: round trip to typed objects, atomic layout, id validation."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.interp import artifacts
from workbench.interp.errors import ArtifactError


def test_attention_artifact_round_trip(tiny_hooked, artifacts_root):
    from workbench.interp import attention
    from workbench.interp.attention import AttentionResult

    res = attention.run(tiny_hooked, "The quick brown fox", seq_lens=[8], n_seqs=2,
                  source={"run_id": "r1", "task": "t", "doc_id": "3", "store": "/x"})
    aid = artifacts.save(res)
    path = artifacts_root / aid
    assert sorted(p.name for p in path.iterdir()) == ["arrays.safetensors", "by_setting.parquet", "head_scores.parquet",
                                                      "manifest.json"]
    assert not any((artifacts_root / ".partial").iterdir())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["kind"] == "attention" and manifest["model"]["spec"].startswith("hf:")
    assert manifest["tokens"] == [tiny_hooked.token_strings(tiny_hooked.tokenize("The quick brown fox")[0])]
    assert manifest["source"]["run_id"] == "r1" and "torch" in manifest["versions"]
    back = artifacts.load(aid)
    assert isinstance(back, AttentionResult)
    np.testing.assert_array_equal(back.patterns, res.patterns)
    pd.testing.assert_frame_equal(back.head_scores, res.head_scores)
    pd.testing.assert_frame_equal(back.by_setting, res.by_setting)
    assert back.induction_heads == res.induction_heads and back.unstable_heads == res.unstable_heads
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
    """Each tool saves its own kind: the tool registry and the kind registry name the same things."""
    from workbench.interp.tools import TOOLS

    assert set(artifacts.kinds()) >= {"attention", "patching", "probe", "attribution", "logit_lens", "drift", "trace",
                                      "circuit", "activations", "neurons", "sae", "sae_eval", "features", "top_units",
                                      "failure_features"}
    assert set(TOOLS.names()) <= set(artifacts.kinds())


def _strip(path, data_fields=(), tables=(), columns=None):
    """Turn a fresh artifact into one saved before those fields existed."""
    m = json.loads((path / "manifest.json").read_text())
    m.pop("sha256", None)   # such artifacts also predate file digests
    for f in data_fields:
        m["data"].pop(f)
    for t in tables:
        m["tables"].remove(t)
        m["files"].remove(f"{t}.parquet")
        (path / f"{t}.parquet").unlink()
    for table, cols in (columns or {}).items():
        pd.read_parquet(path / f"{table}.parquet").drop(columns=cols).to_parquet(path / f"{table}.parquet", index=False)
    (path / "manifest.json").write_text(json.dumps(m))


def test_artifacts_saved_before_the_validated_defaults_still_load(tiny_hooked, artifacts_root):
    from workbench.interp import attention, attribution, probe
    from workbench.interp.probe_data import ProbeDataset

    att = artifacts.save(attention.run(tiny_hooked, "The quick brown fox", seq_lens=[6], n_seqs=2, n_seeds=2))
    _strip(artifacts_root / att, ["unstable_heads"], ["by_setting"],
           {"head_scores": [c for c in artifacts.load(att).head_scores.columns if c.endswith(("_std", "_min", "_max"))]})
    old = artifacts.load(att)
    assert old.by_setting is None and old.unstable_heads == [] and "induction heads" in old.summary()

    ig = artifacts.save(attribution.run(tiny_hooked, "The quick brown fox jumps", " the", n_steps=16))
    _strip(artifacts_root / ig, ["n_steps", "tolerance", "tries"])
    old = artifacts.load(ig)
    assert old.n_steps is None and old.tries == [] and "completeness error" in old.summary()

    rng = np.random.default_rng(0)
    ds = ProbeDataset("toy", [f"It was {rng.integers(1000)}" for _ in range(60)], np.arange(60) % 2, np.arange(60))
    pr = artifacts.save(probe.run(tiny_hooked, ds))
    _strip(artifacts_root / pr, ["selection", "text_baseline"], columns={"by_layer": ["C", "val_accuracy", "n_val"]})
    old = artifacts.load(pr)
    assert old.selection == "test" and old.text_baseline is None
    assert "picked on the test split" in old.summary() and "baseline" not in old.summary()
