"""Malformed input through the real CLI (in process): every case is one `workbench: error: ...` line naming the
problem, exit 2, no traceback, and nothing complete-looking left behind. Cases that fail before a model loads;
data files, damaged stores and interrupted runs have their own batteries (tests/eval, tests/store)."""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from conftest import derive_run

from workbench.store import RunStore

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-store"


@pytest.fixture(scope="module")
def store_template(tmp_path_factory) -> Path:
    """A run store with two complete runs (run-a, run-b) on the same items, digests recorded."""
    root = tmp_path_factory.mktemp("store") / "runs"
    shutil.copytree(LEGACY / "runs", root)
    store = RunStore(root)
    derive_run(store, "legacy-run", "run-a", lambda df: df)
    derive_run(store, "legacy-run", "run-b", lambda df: df.assign(acc=1.0))
    return root


@pytest.fixture
def env(tmp_path, store_template, tiny_model_dir, fixture_mirror) -> dict[str, str]:
    """Placeholders for the case table: a store, artifacts, files and directories of every wrong kind."""
    shutil.copytree(store_template, tmp_path / "runs")
    shutil.copytree(LEGACY / "artifacts", tmp_path / "arts")
    (tmp_path / "file").write_text("not a directory\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "zero.gguf").write_bytes(b"")
    (tmp_path / "trunc.gguf").write_bytes(b"GGUF\x03\x00\x00\x00junk")
    (tmp_path / "text.gguf").write_text("hello")
    (tmp_path / "dir.gguf").mkdir()
    (tmp_path / "noweights").mkdir()
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "noweights")
    for name in ("corrupt", "badconfig", "notokenizer"):
        shutil.copytree(tiny_model_dir, tmp_path / name)
    weights = tmp_path / "corrupt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    (tmp_path / "badconfig" / "config.json").write_text("{bad")
    (tmp_path / "notokenizer" / "tokenizer.json").unlink()
    (tmp_path / "notokenizer" / "tokenizer_config.json").unlink()
    (tmp_path / "binary.yaml").write_bytes(b"\x00\x01\x02\xff\xfe")
    return {"tiny": f"hf:{tiny_model_dir}", "tiny_dir": str(tiny_model_dir), "mirror": str(fixture_mirror), "tmp": str(tmp_path),
            "store": str(tmp_path / "runs"), "arts": str(tmp_path / "arts")}


def _expand(argv: list[str], env: dict[str, str]) -> list[str]:
    return [a.format(**env) for a in argv]


EVAL = ["eval", "--model", "{tiny}", "--data-dir", "{mirror}", "--store", "{tmp}/new-store", "--no-progress"]
ARC = [*EVAL, "--tasks", "arc_easy"]

# (id, argv, substrings the one error line must contain)
EVAL_CASES = [
    ("limit-negative", [*ARC, "--limit", "-1"], ["argument --limit", "at least 1"]),
    ("limit-zero", [*ARC, "--limit", "0"], ["argument --limit", "at least 1"]),
    ("limit-word", [*ARC, "--limit", "abc"], ["argument --limit", "expected an integer"]),
    ("limit-float", [*ARC, "--limit", "1.5"], ["argument --limit", "expected an integer"]),
    ("chunk-negative", [*ARC, "--chunk-size", "-5"], ["argument --chunk-size", "at least 1"]),
    ("chunk-zero", [*ARC, "--chunk-size", "0"], ["argument --chunk-size", "at least 1"]),
    ("batch-zero", [*ARC, "--batch-size", "0"], ["argument --batch-size", "at least 1"]),
    ("batch-negative", [*ARC, "--batch-size", "-1"], ["argument --batch-size", "at least 1"]),
    ("fewshot-negative", [*ARC, "--num-fewshot", "-1"], ["argument --num-fewshot", "at least 0"]),
    ("fewshot-huge", [*ARC, "--num-fewshot", "100000"], ["arc_easy", "--num-fewshot 100000", "only 3 few-shot"]),
    ("fewshot-above-dev", [*EVAL, "--tasks", "mmlu_anatomy", "--num-fewshot", "6"], ["only 5 few-shot", "dev split"]),
    ("seed-negative", [*ARC, "--seed", "-5"], ["argument --seed", "at least 0"]),
    ("seed-huge", [*ARC, "--seed", str(2**64)], ["argument --seed", "at most 4294967295"]),
    ("seed-word", [*ARC, "--seed", "abc"], ["argument --seed", "expected an integer"]),
    ("dtype-unknown", [*ARC, "--dtype", "float64"], ["argument --dtype", "invalid choice"]),
    ("device-unknown", [*ARC, "--device", "gpu0"], ["argument --device", "cpu, cuda, cuda:N, mps or auto"]),
    ("device-int8-cuda", [*ARC[:2], "int8:{tiny_dir}", *ARC[3:], "--device", "cuda"], ["int8", "CPU only"]),
    ("sandbox-timeout-zero", [*ARC, "--sandbox-timeout", "0"], ["argument --sandbox-timeout"]),
    ("sandbox-timeout-nan", [*ARC, "--sandbox-timeout", "nan"], ["argument --sandbox-timeout"]),
    ("sandbox-timeout-negative", [*ARC, "--sandbox-timeout", "-1"], ["argument --sandbox-timeout"]),
    ("sandbox-memory-tiny", [*ARC, "--sandbox-memory", "10"], ["argument --sandbox-memory", "at least 64"]),
    ("flag-misspelt", [*ARC, "--limt", "5"], ["unrecognized arguments: --limt"]),
    ("tasks-and-suite", [*ARC, "--suite", "quick"], ["not allowed with argument"]),
    ("model-missing", ["eval", "--tasks", "arc_easy"], ["--model is required"]),
    ("model-empty", ["eval", "--model", "", "--tasks", "arc_easy"], ["--model is required"]),
    ("tasks-empty", [*EVAL, "--tasks", ""], ["nothing to evaluate"]),
    ("tasks-only-commas", [*EVAL, "--tasks", ",,"], ["nothing to evaluate"]),
    ("task-misspelt", [*EVAL, "--tasks", "arc_eazy"], ["unknown task 'arc_eazy'", "arc_easy"]),
    ("task-second-unknown", [*EVAL, "--tasks", "arc_easy,nope"], ["unknown task 'nope'"]),
    ("task-path-traversal", [*EVAL, "--tasks", "../../etc/passwd"], ["unknown task '../../etc/passwd'"]),
    ("suite-unknown", [*EVAL, "--suite", "nope"], ["unknown suite 'nope'", "quick"]),
    ("model-unknown-spec", [*ARC[:2], "gpt-17", *ARC[3:]], ["unknown model spec 'gpt-17'"]),
    ("model-empty-target", [*ARC[:2], "hf:", *ARC[3:]], ["unknown model spec 'hf:'"]),
    ("hf-missing-dir", [*ARC[:2], "hf:{tmp}/missing", *ARC[3:]], ["model directory not found"]),
    ("hf-dir-is-file", [*ARC[:2], "hf:{tmp}/file", *ARC[3:]], ["not a model directory", "is a file"]),
    ("hf-no-weights", [*ARC[:2], "hf:{tmp}/noweights", *ARC[3:]], ["has no weights"]),
    ("hf-no-config", [*ARC[:2], "hf:{tmp}/dir", *ARC[3:]], ["not a transformers checkpoint"]),
    ("hf-truncated-weights", [*ARC[:2], "hf:{tmp}/corrupt", *ARC[3:]], ["cannot load checkpoint", "SafetensorError"]),
    ("hf-corrupt-config", [*ARC[:2], "hf:{tmp}/badconfig", *ARC[3:]], ["cannot load checkpoint", "config.json"]),
    ("hf-no-tokenizer", [*ARC[:2], "hf:{tmp}/notokenizer", *ARC[3:]], ["cannot load checkpoint", "tokenizer"]),
    ("int8-truncated-weights", [*ARC[:2], "int8:{tmp}/corrupt", *ARC[3:]], ["cannot load checkpoint", "SafetensorError"]),
    ("gguf-zero-bytes", [*ARC[:2], "gguf:{tmp}/zero.gguf", *ARC[3:]], ["zero.gguf is not a GGUF file"]),
    ("gguf-truncated", [*ARC[:2], "gguf:{tmp}/trunc.gguf", *ARC[3:]], ["corrupt or truncated GGUF", "trunc.gguf"]),
    ("gguf-directory", [*ARC[:2], "gguf:{tmp}/dir.gguf", *ARC[3:]], ["not a GGUF file", "is a directory"]),
    ("gguf-text", [*ARC[:2], "gguf:{tmp}/text.gguf", *ARC[3:]], ["bad magic b'hell'"]),
    ("gguf-missing", [*ARC[:2], "gguf:{tmp}/none.gguf", *ARC[3:]], ["GGUF file not found", "none.gguf"]),
    ("llamacpp-zero-bytes", [*ARC[:2], "llamacpp:{tmp}/zero.gguf", *ARC[3:]], ["is not a GGUF file"]),
    ("int8-not-checkpoint", [*ARC[:2], "int8:{tmp}/dir.gguf", *ARC[3:]], ["not a transformers checkpoint"]),
    ("openai-not-url", [*ARC[:2], "openai:notaurl", *ARC[3:]], ["needs a base URL"]),
    ("openai-nobody-listening", [*ARC[:2], "openai:http://127.0.0.1:9", *ARC[3:]], ["no OpenAI-compatible server"]),
    ("judge-unknown", [*ARC, "--refusal-judge", "nope"], ["unknown refusal judge 'nope'"]),
    ("run-id-traversal", [*ARC, "--run-id", "../x"], ["invalid run id '../x'"]),
    ("run-id-empty", [*ARC, "--run-id", ""], ["invalid run id ''"]),
    ("run-id-unicode", [*ARC, "--run-id", "rün-ïd"], ["invalid run id"]),
    ("run-id-huge", [*ARC, "--run-id", "r" * 300], ["invalid run id"]),
    ("run-id-hidden", [*ARC, "--run-id", ".hidden"], ["invalid run id"]),
    ("run-id-taken", [*ARC, "--store", "{store}", "--run-id", "run-a"], ["run run-a already exists"]),
    ("resume-empty", ["eval", "--resume", "", "--store", "{store}"], ["invalid run id ''"]),
    ("resume-traversal", ["eval", "--resume", "../runs", "--store", "{store}"], ["invalid run id"]),
    ("resume-unknown", ["eval", "--resume", "nope", "--store", "{store}"], ["no interrupted run nope"]),
    ("resume-complete", ["eval", "--resume", "run-a", "--store", "{store}"], ["already complete"]),
    ("resume-with-model", ["eval", "--resume", "x", "--model", "{tiny}"], ["--resume repeats"]),
    ("resume-store-file", ["eval", "--resume", "x", "--store", "{tmp}/file"], ["is not a directory"]),
    ("data-dir-is-file", [*EVAL[:4], "{tmp}/file", *EVAL[5:], "--tasks", "arc_easy"], ["missing data file"]),
    ("data-dir-missing", [*EVAL[:4], "{tmp}/nowhere", *EVAL[5:], "--tasks", "arc_easy"], ["missing data file"]),
    ("store-is-file", [*ARC[:6], "{tmp}/file", "--tasks", "arc_easy"], ["run store", "is not a directory"]),
    ("store-under-file", [*ARC[:6], "{tmp}/file/sub", "--tasks", "arc_easy"], ["cannot create run store"]),
    ("store-unwritable", [*ARC[:6], "/proc/workbench-store", "--tasks", "arc_easy"], ["cannot create run store"]),
    ("store-empty-path", [*ARC[:6], "", "--tasks", "arc_easy"], ["argument --store", "empty string"]),
    ("data-dir-empty-path", [*EVAL[:4], "", *EVAL[5:], "--tasks", "arc_easy"], ["argument --data-dir", "empty string"]),
]


@pytest.mark.parametrize("argv, needles", [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_eval_bad_input(wb, env, argv, needles):
    wb(*_expand(argv, env)).error_line(*[n.format(**env) for n in needles])
    new = Path(env["tmp"]) / "new-store"
    assert not new.exists() or RunStore(new).scan() == ([], []) and not list(RunStore(new).partial())


READ_CASES = [
    ("runs-list-store-file", ["runs", "list", "--store", "{tmp}/file"], ["is not a directory"]),
    ("runs-show-unknown", ["runs", "show", "nope", "--store", "{store}"], ["no run nope"]),
    ("runs-show-traversal", ["runs", "show", "../runs", "--store", "{store}"], ["invalid run id"]),
    ("runs-show-empty-id", ["runs", "show", "", "--store", "{store}"], ["invalid run id ''"]),
    ("runs-show-store-file", ["runs", "show", "run-a", "--store", "{tmp}/file"], ["is not a directory"]),
    ("runs-verify-store-file", ["runs", "verify", "--store", "{tmp}/file"], ["is not a directory"]),
    ("runs-no-action", ["runs"], ["required: ACTION"]),
    ("compare-one-run", ["compare", "run-a", "--store", "{store}"], ["at least two runs"]),
    ("compare-same-run", ["compare", "run-a", "run-a", "--store", "{store}"], ["named twice"]),
    ("compare-unknown-run", ["compare", "run-a", "nope", "--store", "{store}"], ["no run nope"]),
    ("compare-traversal", ["compare", "../x", "run-a", "--store", "{store}"], ["invalid run id"]),
    ("compare-alpha-seven", ["compare", "run-a", "run-b", "--alpha", "7"], ["argument --alpha", "(0, 1)"]),
    ("compare-alpha-zero", ["compare", "run-a", "run-b", "--alpha", "0"], ["argument --alpha"]),
    ("compare-alpha-nan", ["compare", "run-a", "run-b", "--alpha", "nan"], ["argument --alpha"]),
    ("compare-correction", ["compare", "run-a", "run-b", "--correction", "nope"], ["invalid choice: 'nope'"]),
    ("compare-seed-negative", ["compare", "run-a", "run-b", "--seed", "-1"], ["argument --seed"]),
    ("compare-out-file", ["compare", "run-a", "run-b", "--store", "{store}", "--out", "{tmp}/file"], ["is a file"]),
    ("compare-out-under-file", ["compare", "run-a", "run-b", "--store", "{store}", "--out", "{tmp}/file/sub"],
     ["cannot write the report"]),
    ("compare-out-unwritable", ["compare", "run-a", "run-b", "--store", "{store}", "--out", "/proc/wb-report"],
     ["cannot write the report"]),
    ("compare-out-empty", ["compare", "run-a", "run-b", "--store", "{store}", "--out", ""], ["argument --out"]),
    ("runs-list-store-empty", ["runs", "list", "--store", " "], ["argument --store", "empty string"]),
    ("artifacts-list-empty", ["artifacts", "list", "--artifacts", ""], ["argument --artifacts", "empty string"]),
    ("artifacts-list-file", ["artifacts", "list", "--artifacts", "{tmp}/file"], ["artifact root", "not a directory"]),
    ("artifacts-verify-file", ["artifacts", "verify", "--artifacts", "{tmp}/file"], ["not a directory"]),
    ("artifacts-show-traversal", ["artifacts", "show", "../etc", "--artifacts", "{arts}"], ["invalid artifact id"]),
    ("artifacts-show-empty-id", ["artifacts", "show", "", "--artifacts", "{arts}"], ["invalid artifact id ''"]),
    ("artifacts-show-unknown", ["artifacts", "show", "nope", "--artifacts", "{arts}"], ["no artifact nope"]),
    ("dashboard-port-high", ["dashboard", "--port", "70000", "--store", "{store}"], ["--port 70000 is not a TCP port"]),
    ("dashboard-port-negative", ["dashboard", "--port", "-1", "--store", "{store}"], ["--port -1 is not a TCP port"]),
    ("dashboard-port-word", ["dashboard", "--port", "abc"], ["argument --port", "invalid int value"]),
    ("dashboard-host-bad-ip", ["dashboard", "--host", "999.1.1.1", "--store", "{store}"], ["--host '999.1.1.1'"]),
    ("dashboard-host-unknown", ["dashboard", "--host", "no.such.host.invalid", "--store", "{store}"],
     ["--host 'no.such.host.invalid'"]),
    ("dashboard-host-not-ours", ["dashboard", "--host", "192.0.2.1", "--port", "0", "--store", "{store}"],
     ["cannot listen on 192.0.2.1:0"]),
    ("dashboard-store-file", ["dashboard", "--port", "0", "--store", "{tmp}/file", "--no-jobs"],
     ["run store", "is not a directory"]),
    ("dashboard-artifacts-file", ["dashboard", "--port", "0", "--artifacts", "{tmp}/file", "--no-jobs"],
     ["artifact root", "is not a directory"]),
    ("interp-unknown-tool", ["interp", "nope", "--model", "{tiny}"], ["invalid choice: 'nope'"]),
    ("interp-positions-word", ["interp", "logit-lens", "--model", "{tiny}", "--positions", "x"],
     ["argument --positions", "comma-separated integers"]),
    ("interp-k-zero", ["interp", "logit-lens", "--model", "{tiny}", "-k", "0"], ["argument -k", "at least 1"]),
    ("interp-seed-negative", ["interp", "attention", "--model", "{tiny}", "--seed", "-1"], ["argument --seed"]),
    ("interp-seq-len-one", ["interp", "attention", "--model", "{tiny}", "--seq-len", "1"], ["argument --seq-len"]),
    ("interp-ig-one-step", ["interp", "attribute", "--model", "{tiny}", "--n-steps", "1"], ["argument --n-steps"]),
    ("interp-model-missing", ["interp", "logit-lens", "--model", "hf:{tmp}/missing", "--prompt", "x",
                              "--artifacts", "{tmp}/a"], ["not a transformers checkpoint"]),
    ("interp-truncated-weights", ["interp", "logit-lens", "--model", "hf:{tmp}/corrupt", "--prompt", "x",
                                  "--artifacts", "{tmp}/a"], ["cannot load checkpoint", "SafetensorError"]),
    ("interp-run-without-sample", ["interp", "logit-lens", "--model", "{tiny}", "--run", "run-a", "--store", "{store}"],
     ["--run and --sample go together"]),
    ("interp-run-unknown", ["interp", "logit-lens", "--model", "{tiny}", "--run", "nope", "--sample", "0",
                            "--store", "{store}"], ["no run nope"]),
    ("interp-run-traversal", ["interp", "logit-lens", "--model", "{tiny}", "--run", "../x", "--sample", "0",
                              "--store", "{store}"], ["invalid run id"]),
]


@pytest.mark.parametrize("argv, needles", [c[1:] for c in READ_CASES], ids=[c[0] for c in READ_CASES])
def test_read_and_report_commands_bad_input(wb, env, argv, needles):
    wb(*_expand(argv, env)).error_line(*needles)


SCAN = ["contamination", "--tasks", "mmlu_anatomy", "--limit", "2", "--data-dir", "{mirror}", "--store", "{tmp}/cs",
        "--no-progress"]
# (id, corpus file name (written by the test unless it is missing) [and more flags], substrings of the error line)
CORPUS_CASES = [
    ("missing", "nope", ["does not exist"]),
    ("binary", "model.bin", ["not UTF-8 text (it contains NUL bytes)"]),
    ("latin1", "latin1.txt", ["not UTF-8 text (invalid UTF-8"]),
    ("empty-file", "empty.txt", ["is empty"]),
    ("whitespace-only", "blank.txt", ["holds no words"]),
    ("empty-document", "docs.jsonl", ["line 2: empty document"]),
    ("jsonl-not-json", "broken.jsonl", ["line 2 is not JSON"]),
    ("parquet-damaged", "table.parquet", ["is not a readable Parquet file"]),
    ("empty-directory", "dir", ["holds no .jsonl, .md"]),
    ("jsonl-no-text-field", "docs.jsonl --text-field x", ["no string field 'x'"]),
]
CORPORA = {"model.bin": b"\x7fELF\x00\x01\x02" * 100, "latin1.txt": "caf\xe9 cr\xe8me ".encode("latin-1") * 10,
           "empty.txt": b"", "blank.txt": b" \n\t\n", "docs.jsonl": b'{"text": "fine words here"}\n{"text": ""}\n',
           "broken.jsonl": b'{"text": "ok"}\n{"text": \n', "table.parquet": b"PAR1" + b"\x01" * 64 + b"PAR1"}


@pytest.mark.parametrize("name, needles", [c[1:] for c in CORPUS_CASES], ids=[c[0] for c in CORPUS_CASES])
def test_contamination_bad_corpus_writes_nothing(wb, env, name, needles):
    tmp = Path(env["tmp"])
    for file, data in CORPORA.items():
        (tmp / file).write_bytes(data)
    name, *flags = name.split()
    wb(*_expand(SCAN, env), "--corpus", tmp / name, *flags).error_line(*needles)
    results = tmp / "cs" / ".contamination"
    assert not results.exists() or [p.name for p in results.iterdir()] in ([], [".partial"])


SCAN_CASES = [
    ("no-corpus", SCAN, ["--corpus"]),
    ("corpus-empty-arg", [*SCAN, "--corpus", ""], ["argument --corpus", "empty string"]),
    ("ngram-zero", [*SCAN, "--corpus", "{tmp}/file", "--ngram", "0"], ["argument --ngram", "at least 1"]),
    ("min-overlap-two", [*SCAN, "--corpus", "{tmp}/file", "--min-overlap", "2"], ["argument --min-overlap"]),
    ("mink-k-zero", [*SCAN, "--corpus", "{tmp}/file", "--mink-k", "0"], ["argument --mink-k"]),
    ("seed-negative", [*SCAN, "--corpus", "{tmp}/file", "--seed", "-1"], ["argument --seed"]),
    ("unknown-task", ["contamination", "--corpus", "{tmp}/file", "--tasks", "nope", "--data-dir", "{mirror}",
                      "--store", "{tmp}/cs"], ["nope"]),
    ("unknown-run", ["contamination", "--corpus", "{tmp}/file", "--run", "nope", "--store", "{store}"], ["no run nope"]),
    ("labels-missing", [*SCAN, "--corpus", "{tmp}/file", "--labels", "{tmp}/nolabels.csv"], ["nolabels.csv"]),
    ("compare-result-unknown", ["compare", "run-a", "run-b", "--store", "{store}", "--out", "{tmp}/out",
                                "--contamination", "nope"], ["no contamination result 'nope'"]),
    ("compare-result-empty", ["compare", "run-a", "run-b", "--contamination", ""],
     ["argument --contamination", "empty string"]),
]


@pytest.mark.parametrize("argv, needles", [c[1:] for c in SCAN_CASES], ids=[c[0] for c in SCAN_CASES])
def test_contamination_bad_arguments(wb, env, argv, needles):
    wb(*_expand(argv, env)).error_line(*needles)


def test_dashboard_port_in_use(wb, env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wb("dashboard", "--port", port, "--store", env["store"], "--no-jobs").error_line(f"cannot listen on 127.0.0.1:{port}")


# ---- gate policies ----------------------------------------------------------------------------------
POLICIES = [
    ("list", "[1, 2]", "must hold a mapping"),
    ("string", '"just a string"', "must hold a mapping"),
    ("max-drop-word", "max_drop: abc", "max_drop must be a finite number, got 'abc'"),
    ("max-drop-negative", "max_drop: -0.1", "need max_drop >= 0"),
    ("max-drop-bool", "max_drop: true", "max_drop must be a finite number, got True"),
    ("max-drop-inf", "max_drop: .inf", "max_drop must be a finite number, got inf"),
    ("alpha-two", "alpha: 2", "0 < alpha < 1"),
    ("alpha-zero", "alpha: 0", "0 < alpha < 1"),
    ("alpha-nan", "alpha: .nan", "alpha must be a finite number"),
    ("alpha-list", "alpha: [0.05]", "alpha must be a finite number"),
    ("min-items-zero", "min_items: 0", "min_items >= 1"),
    ("min-items-negative", "min_items: -3", "min_items >= 1"),
    ("min-items-fraction", "min_items: 1.5", "min_items must be a whole number, got 1.5"),
    ("min-items-string", 'min_items: "10"', "min_items must be a whole number, got '10'"),
    ("unknown-key", "max_dorp: 0.1", "unknown key(s) max_dorp"),
    ("metric-number", "metric: 5", "metric must be a metric name"),
    ("metric-unknown", "metric: nonexistent", "no metric 'nonexistent'"),
    ("correction-unknown", "correction: nope", "unknown correction 'nope'"),
    ("correction-list", "correction: [1]", "unknown correction [1]"),
    ("tasks-list", "tasks: [a, b]", "`tasks` must map task names"),
    ("task-limits-number", "tasks:\n  arc_easy: 5", "tasks.arc_easy: expected a mapping, got int"),
    ("task-limits-zero", "tasks:\n  arc_easy: 0", "tasks.arc_easy: expected a mapping, got int"),
    ("task-unknown-key", "tasks:\n  arc_easy: {max_drop: 0.1, bogus: 1}", "tasks.arc_easy: unknown key(s) bogus"),
    ("task-not-in-runs", "tasks:\n  nonexistent_task: {}", "not in the runs: nonexistent_task"),
    ("task-negative-drop", "tasks:\n  arc_easy: {max_drop: -1}", "tasks.arc_easy: need max_drop >= 0"),
    ("yaml-syntax", "max_drop: [\n", "is not valid YAML"),
    ("yaml-tab-indent", "tasks:\n\tarc_easy: {}", "is not valid YAML"),
]


@pytest.mark.parametrize("text, needle", [c[1:] for c in POLICIES], ids=[c[0] for c in POLICIES])
def test_gate_policy_bad_input(wb, env, tmp_path, text, needle):
    (tmp_path / "policy.yaml").write_text(text)
    junit = tmp_path / "gate.xml"
    res = wb("gate", "--baseline", "run-a", "--candidate", "run-b", "--store", env["store"], "--policy",
             tmp_path / "policy.yaml", "--junit", junit)
    res.error_line("policy" if "metric" not in needle else "", needle)
    assert "<failure" in junit.read_text() or "<error" in junit.read_text()  # CI still gets a report saying why


GATE_FILES = [
    ("policy-binary", ["--policy", "{tmp}/binary.yaml"], ["is not text"]),
    ("policy-directory", ["--policy", "{tmp}/dir"], ["is a directory"]),
    ("policy-missing", ["--policy", "{tmp}/missing.yaml"], ["not found"]),
    ("policy-empty-path", ["--policy", ""], ["argument --policy", "empty string"]),
    ("junit-empty-path", ["--junit", ""], ["argument --junit", "empty string"]),
    ("junit-missing-dir", ["--junit", "{tmp}/nodir/gate.xml"], ["cannot write the JUnit report"]),
    ("junit-directory", ["--junit", "{tmp}/dir"], ["cannot write the JUnit report", "Is a directory"]),
    ("summary-directory", ["--summary", "{tmp}/dir"], ["cannot write the summary", "Is a directory"]),
    ("seed-negative", ["--seed", "-1"], ["argument --seed"]),
]


@pytest.mark.parametrize("extra, needles", [c[1:] for c in GATE_FILES], ids=[c[0] for c in GATE_FILES])
def test_gate_file_arguments_bad_input(wb, env, extra, needles):
    res = wb("gate", "--baseline", "run-a", "--candidate", "run-b", "--store", env["store"], *_expand(extra, env))
    res.error_line(*needles)


def test_gate_unknown_run_and_unwritable_junit_named_together(wb, env):
    res = wb("gate", "--baseline", "nope", "--candidate", "run-b", "--store", env["store"], "--junit",
             f"{env['tmp']}/nodir/x.xml")
    res.error_line("no run nope", "cannot write the JUnit report")


def test_empty_policy_means_the_defaults(wb, env, tmp_path):
    """Correct success: an empty policy file is the documented defaults (every key optional)."""
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "low.yaml").write_text("min_items: 1\n")
    default = wb("gate", "--baseline", "run-a", "--candidate", "run-b", "--store", env["store"])
    empty = wb("gate", "--baseline", "run-a", "--candidate", "run-b", "--store", env["store"], "--policy",
               tmp_path / "empty.yaml")
    assert (empty.rc, empty.out) == (default.rc, default.out) and "too few items" in empty.out
    low = wb("gate", "--baseline", "run-a", "--candidate", "run-b", "--store", env["store"], "--policy",
             tmp_path / "low.yaml")
    assert low.rc == 0 and "PASS" in low.out and not low.err


# ---- careless but valid: correct successes ------------------------------------------------------------
def test_duplicate_tasks_trailing_commas_and_a_limit_past_the_data_run_once(wb, env):
    store = Path(env["tmp"]) / "ok"
    res = wb("eval", "--model", env["tiny"], "--tasks", " arc_easy,,arc_easy, ", "--limit", "100000",
             "--chunk-size", "100000", "--data-dir", env["mirror"], "--store", store, "--no-progress", "--json")
    assert res.rc == 0, res.err
    run = RunStore(store).list()[0]
    assert list(run.manifest["tasks"]) == ["arc_easy"] and run.manifest["n_samples"] == 6  # every doc, once
    assert run.manifest["tasks"]["arc_easy"]["n_chunks"] == 1
