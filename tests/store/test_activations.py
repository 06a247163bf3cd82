"""The activation store: shards written and read back, statistics, damage detected, interrupted writes redone."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.store.activations import ActivationError, ActivationStore


def _arrays(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"tokens": rng.integers(0, 100, n), "doc": np.repeat(np.arange(n // 4), 4), "pos": np.tile(np.arange(4), n // 4),
            "blocks.0.hook_resid_post": rng.normal(size=(n, 6)).astype(np.float32)}


@pytest.fixture
def corpus(tmp_path):
    store = ActivationStore(tmp_path)
    return store.create("c1", {"sites": {"blocks.0.hook_resid_post": 6}, "model": {"sha256": "x"}})


def test_shards_round_trip_with_unit_statistics(corpus):
    a, b = _arrays(8, 0), _arrays(12, 1)
    corpus.write_shard(0, a, {"n_docs": 2})
    corpus.write_shard(1, b, {"n_docs": 3})
    assert [s["index"] for s in corpus.shards()] == [0, 1] and corpus.n_tokens == 20
    got = corpus.read(corpus.shards()[1])
    np.testing.assert_array_equal(got["tokens"], b["tokens"])
    site = "blocks.0.hook_resid_post"
    assert got[site].dtype == np.float16
    np.testing.assert_array_equal(got[site], b[site].astype(np.float16))
    stats = corpus.unit_stats(site)
    both = np.concatenate([a[site], b[site]]).astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(stats["max"], both.max(0))
    np.testing.assert_allclose(stats["mean"], both.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], both.std(0), rtol=1e-4)
    assert corpus.verify() == []


def test_corrupt_shard_is_refused(corpus):
    corpus.write_shard(0, _arrays(8, 0), {})
    path = corpus.path / "shard-00000.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = ActivationStore(corpus.path.parent).open("c1")   # a new reader (no cached verification)
    with pytest.raises(ActivationError, match="shard 0 .* is corrupt"):
        fresh.read(fresh.shards()[0])
    assert len(fresh.verify()) == 1


def test_interrupted_write_is_discarded_and_wrong_shapes_refused(corpus):
    corpus.write_shard(0, _arrays(8, 0), {})
    (corpus.path / ".shard-00001.safetensors.tmp").write_bytes(b"half")
    (corpus.path / "shard-00002.safetensors").write_bytes(b"no record")
    assert corpus.discard_incomplete() == 2
    assert sorted(p.name for p in corpus.path.iterdir()) == ["manifest.json", "shard-00000.json", "shard-00000.safetensors"]
    bad = _arrays(8, 0)
    bad["blocks.0.hook_resid_post"] = bad["blocks.0.hook_resid_post"][:, :5]
    with pytest.raises(ActivationError, match="expected"):
        corpus.write_shard(1, bad, {})


def test_ids_are_validated_and_missing_corpora_named(tmp_path):
    store = ActivationStore(tmp_path)
    with pytest.raises(ActivationError, match="invalid corpus id"):
        store.open("../x")
    with pytest.raises(ActivationError, match="no activation corpus nope"):
        store.open("nope")
