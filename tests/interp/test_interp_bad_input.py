"""Malformed input to the interpretability tools (with the tiny model loaded): one `workbench: error:` line,
exit 2, and no artifact saved; never a silent analysis of something else than what was asked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPT = "The quick brown fox"  # 6 tokens for the tiny tokenizer


@pytest.fixture
def probes(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "probes"
    root.mkdir()
    (root / "ok.yaml").write_text("builder: synthetic_sentiment\nn: 20\n")
    monkeypatch.setenv("WORKBENCH_PROBES", str(root))
    return root


CASES = [
    ("positions-past-the-end", ["logit-lens", "--prompt", PROMPT, "--positions", "99999"],
     ["position(s) 99999 out of range", "has 6 tokens", "0..5"]),
    ("positions-before-the-start", ["logit-lens", "--prompt", PROMPT, "--positions", "-99999"],
     ["position(s) -99999 out of range", "-6..-1"]),
    ("positions-one-of-several", ["logit-lens", "--prompt", PROMPT, "--positions", "0,6,-7"],
     ["position(s) 6, -7 out of range"]),
    ("k-above-vocabulary", ["logit-lens", "--prompt", PROMPT, "-k", "100000"],
     ["-k 100000 is out of range", "vocabulary"]),
    ("target-empty", ["logit-lens", "--prompt", PROMPT, "--target", ""], ["target '' is not a single token"]),
    ("target-several-tokens", ["logit-lens", "--prompt", PROMPT, "--target", "quick brown"], ["not a single token"]),
    ("prompt-empty", ["logit-lens", "--prompt", ""], ["a prompt is needed"]),
    ("prompt-too-long", ["attention", "--prompt", PROMPT, "--seq-len", "100000", "--n-seqs", "1"],
     ["sequences of 200001 tokens", "at most 4096"]),
    ("attention-layer-past-the-end", ["attention", "--prompt", PROMPT, "--layers", "99", "--seq-len", "4"],
     ["layers [99] out of range"]),
    ("patching-lengths-differ", ["patching", "--prompt", PROMPT, "--corrupt", "The", "--answer", " fox", "--wrong", "The"],
     ["same number of tokens"]),
    ("patching-site-unknown", ["patching", "--prompt", "The quick", "--corrupt", "The lazy", "--answer", " fox",
                               "--sites", "nope"], ["unknown patch site family 'nope'"]),
    ("drift-variant-unknown", ["drift", "--variant", "nope"], ["unknown variant 'nope'"]),
    ("probe-traversal", ["probe", "--dataset", "../../etc/passwd"], ["unknown probe dataset '../../etc/passwd'"]),
]


@pytest.mark.parametrize("argv, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tool_bad_input(wb, tiny_model_dir, tmp_path, argv, needles):
    arts = tmp_path / "arts"
    res = wb("interp", argv[0], "--model", f"hf:{tiny_model_dir}", *argv[1:], "--artifacts", arts)
    res.error_line(*needles)
    assert not arts.exists() or not [p for p in arts.iterdir() if not p.name.startswith(".")]


PROBE_FILES = [
    ("yaml-broken", "builder: [\n", "cannot be read"),
    ("yaml-tabs", "builder:\tsynthetic_sentiment\n\tn: 2\n", "cannot be read"),
    ("yaml-list", "- builder\n- n\n", "is not a YAML mapping"),
    ("yaml-empty", "", "is not a YAML mapping"),
    ("yaml-binary", b"\xff\xfe\x00\x01", "cannot be read"),
    ("builder-unknown", "builder: nope\n", "unknown probe dataset builder 'nope'"),
    ("builder-missing", "n: 20\n", "unknown probe dataset builder 'None'"),
    ("n-not-a-number", "builder: synthetic_sentiment\nn: many\n", "has a value of the wrong kind"),
    ("file-key-missing", "builder: truthfulqa_statements\n", "lacks 'file'"),
    ("file-missing", "builder: truthfulqa_statements\nfile: nowhere.csv\n", "probe data file not found: "),
]


@pytest.mark.parametrize("text, needle", [c[1:] for c in PROBE_FILES], ids=[c[0] for c in PROBE_FILES])
def test_broken_probe_declarations(wb, tiny_model_dir, tmp_path, probes, text, needle):
    path = probes / "bad.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    res = wb("interp", "probe", "--model", f"hf:{tiny_model_dir}", "--dataset", "bad", "--artifacts", tmp_path / "a",
             "--data-dir", tmp_path)
    line = res.error_line(needle)
    assert "bad" in line or "nowhere.csv" in line  # the declaration, or the file it names


def test_a_broken_declaration_does_not_hide_the_others(probes):
    from workbench.interp.probe_data import available, load_dataset

    (probes / "bad.yaml").write_text("builder: [\n")
    assert list(available()) == ["ok"]
    assert len(load_dataset("ok").texts) == 20


def test_positions_in_range_are_the_ones_analysed(wb, tiny_model_dir, tmp_path):
    """Correct success: -1 is the last position, 0 the first; nothing is wrapped round silently."""
    arts = tmp_path / "arts"
    res = wb("interp", "logit-lens", "--model", f"hf:{tiny_model_dir}", "--prompt", PROMPT, "--positions", "0,-1",
             "-k", "2", "--artifacts", arts, "--quiet")
    assert res.rc == 0, res.err
    manifest = json.loads((arts / res.out.strip() / "manifest.json").read_text())
    assert manifest["params"]["positions"] == [0, 5]
