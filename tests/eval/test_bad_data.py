"""Malformed benchmark files through `workbench eval` (in process, on a copy of the fixture mirror): each is
one `workbench: error:` line naming the file (and line, where there is one), exit 2, before any model
loads, and nothing left in the store; files that are odd but well formed (a BOM, blank lines) read as
the clean file does."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.eval import data
from workbench.store import RunStore

MMLU_TEST, MMLU_DEV = "mmlu/test/anatomy_test.csv", "mmlu/dev/anatomy_dev.csv"
ARC, TQA = "arc/ARC-Easy/ARC-Easy-Test.jsonl", "truthfulqa/v0/mc_task.json"
GSM, HE, BBQ = "gsm8k/test.jsonl", "humaneval/HumanEval.jsonl", "bbq/data/Age.jsonl"


def _replace(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text, encoding="utf-8")


def _bytes(blob: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(blob)


def _prepend(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text + p.read_text(encoding="utf-8"), encoding="utf-8")


def _append(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(p.read_text(encoding="utf-8") + text, encoding="utf-8")


def _first_jsonl_row(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        lines = p.read_text(encoding="utf-8").splitlines()
        row = json.loads(lines[0])
        edit(row)
        p.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n", encoding="utf-8")

    return apply


def _tqa(edit: Callable[[list], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        rows = json.loads(p.read_text(encoding="utf-8"))
        edit(rows)
        p.write_text(json.dumps(rows), encoding="utf-8")

    return apply


def _directory(p: Path) -> None:
    p.unlink()
    p.mkdir()


# (id, task, file, damage, substrings of the error line)
CASES = [
    # MMLU: a headerless CSV, where an unclosed quote merges rows
    ("mmlu-unclosed-quote-first-row", "mmlu_anatomy", MMLU_TEST, _prepend('"'),
     ["malformed CSV", "anatomy_test.csv", "record starting at line 1", "unclosed or stray quote"]),
    ("mmlu-unclosed-quote-merges-rows", "mmlu_anatomy", MMLU_TEST,
     _prepend('"Which bone is the longest in the human body?,Femur,Tibia,Humerus,Radius,A\n'
              'Convert 12",30 cm,25 cm,12 cm,20 cm,A\n'),
     ["anatomy_test.csv line 1", "complete row", "unclosed quote merged rows"]),
    ("mmlu-unclosed-quote-last-row", "mmlu_anatomy", MMLU_TEST, _append('"Which organ, a,b,c,d,A\n'),
     ["malformed CSV", "anatomy_test.csv"]),
    ("mmlu-stray-quote-mid-field", "mmlu_anatomy", MMLU_TEST, _append('"Quoted" then more,a,b,c,d,A\n'),
     ["malformed CSV", "anatomy_test.csv", "record starting at line 9"]),
    ("mmlu-empty-file", "mmlu_anatomy", MMLU_TEST, _replace(""), ["anatomy_test.csv has no rows"]),
    ("mmlu-only-blank-lines", "mmlu_anatomy", MMLU_TEST, _replace("\n\n\n"), ["anatomy_test.csv has no rows"]),
    ("mmlu-seven-columns", "mmlu_anatomy", MMLU_TEST, _append("Q?,a,b,c,d,A,extra\n"),
     ["anatomy_test.csv line 9", "expected 6 columns", "got 7"]),
    ("mmlu-three-columns", "mmlu_anatomy", MMLU_TEST, _append("Only three,columns,here\n"),
     ["anatomy_test.csv line 9", "got 3"]),
    ("mmlu-answer-unknown", "mmlu_anatomy", MMLU_TEST, _append("Q?,a,b,c,d,Z\n"),
     ["anatomy_test.csv line 9", "answer must be one of A-D"]),
    ("mmlu-answer-lowercase", "mmlu_anatomy", MMLU_TEST, _append("Q?,a,b,c,d,a\n"), ["line 9", "one of A-D, got 'a'"]),
    ("mmlu-question-empty", "mmlu_anatomy", MMLU_TEST, _append(" ,a,b,c,d,A\n"), ["line 9", "'question' is missing"]),
    ("mmlu-not-utf8", "mmlu_anatomy", MMLU_TEST, _bytes("Qu\u00e9?,a,b,c,d,A\n".encode("latin-1")),
     ["anatomy_test.csv is not valid UTF-8"]),
    ("mmlu-binary", "mmlu_anatomy", MMLU_TEST, _bytes(bytes(range(256)) * 4), ["anatomy_test.csv is not valid UTF-8"]),
    ("mmlu-field-too-large", "mmlu_anatomy", MMLU_TEST, _append('"' + "x" * 200_000 + '",a,b,c,d,A\n'),
     ["malformed CSV", "anatomy_test.csv", "field larger than field limit"]),
    ("mmlu-test-file-is-directory", "mmlu_anatomy", MMLU_TEST, _directory, ["is not a file", "anatomy_test.csv"]),
    ("mmlu-dev-missing", "mmlu_anatomy", MMLU_DEV, lambda p: p.unlink(), ["missing data file", "anatomy_dev.csv"]),
    ("mmlu-dev-too-short-for-5-shot", "mmlu_anatomy", MMLU_DEV,
     lambda p: p.write_text("".join(p.read_text().splitlines(keepends=True)[:3])),
     ["mmlu_anatomy", "asks for 5 few-shot examples", "only 3", "dev split"]),
    # ARC: JSONL
    ("arc-truncated-last-line", "arc_easy", ARC, lambda p: p.write_bytes(p.read_bytes()[:-40]),
     ["ARC-Easy-Test.jsonl line 6", "invalid JSON"]),
    ("arc-row-is-array", "arc_easy", ARC, _prepend("[1, 2, 3]\n"), ["ARC-Easy-Test.jsonl line 1", "malformed row"]),
    ("arc-row-is-string", "arc_easy", ARC, _prepend('"just text"\n'), ["ARC-Easy-Test.jsonl line 1", "malformed row"]),
    ("arc-row-is-null", "arc_easy", ARC, _prepend("null\n"), ["ARC-Easy-Test.jsonl line 1", "malformed row"]),
    ("arc-answer-key-unknown", "arc_easy", ARC, _first_jsonl_row(lambda r: r.update(answerKey="Z")),
     ["line 1", "answerKey 'Z' is not one of the choice labels"]),
    ("arc-no-choices", "arc_easy", ARC, _first_jsonl_row(lambda r: r["question"].update(choices=[])),
     ["line 1", "non-empty 'choices' list"]),
    ("arc-stem-empty", "arc_easy", ARC, _first_jsonl_row(lambda r: r["question"].update(stem="")),
     ["line 1", "'stem' is missing or empty"]),
    ("arc-empty-file", "arc_easy", ARC, _replace(""), ["ARC-Easy-Test.jsonl has no rows"]),
    ("arc-whitespace-only", "arc_easy", ARC, _replace("\n  \n\t\n"), ["ARC-Easy-Test.jsonl has no rows"]),
    ("arc-not-utf8", "arc_easy", ARC, _bytes(b'{"id": "\xff\xfe"}\n'), ["ARC-Easy-Test.jsonl is not valid UTF-8"]),
    ("arc-two-objects-one-line", "arc_easy", ARC, lambda p: p.write_text(p.read_text().replace("}\n{", "} {", 1)),
     ["ARC-Easy-Test.jsonl line 1", "invalid JSON"]),
    # TruthfulQA: one JSON array
    ("tqa-not-an-array", "truthfulqa_mc1", TQA, _replace('{"question": "q"}'), ["mc_task.json: expected a JSON array"]),
    ("tqa-empty-array", "truthfulqa_mc1", TQA, _replace("[]"), ["mc_task.json has no rows"]),
    ("tqa-corrupt", "truthfulqa_mc1", TQA, lambda p: p.write_text(p.read_text()[:-30]), ["mc_task.json is not valid JSON"]),
    ("tqa-empty-file", "truthfulqa_mc1", TQA, _replace(""), ["mc_task.json is not valid JSON"]),
    ("tqa-two-true", "truthfulqa_mc1", TQA,
     _tqa(lambda rows: rows[0]["mc1_targets"].update(dict.fromkeys(rows[0]["mc1_targets"], 1))),
     ["mc_task.json line 1", "exactly one true answer"]),
    ("tqa-true-not-first", "truthfulqa_mc1", TQA,
     _tqa(lambda rows: rows[0].update(mc1_targets=dict(reversed(list(rows[0]["mc1_targets"].items()))))),
     ["mc_task.json line 1", "true answer first"]),
    ("tqa-label-not-binary", "truthfulqa_mc2", TQA, _tqa(lambda rows: rows[1]["mc2_targets"].update(x=2)),
     ["mc_task.json line 2", "labels must be 0 or 1"]),
    ("tqa-row-is-number", "truthfulqa_mc1", TQA, _tqa(lambda rows: rows.insert(0, 7)), ["mc_task.json line 1"]),
    # GSM8K, HumanEval, BBQ
    ("gsm8k-no-final-answer", "gsm8k", GSM, _first_jsonl_row(lambda r: r.update(answer="42")),
     ["test.jsonl line 1", "no '#### <number>' final-answer line"]),
    ("gsm8k-question-missing", "gsm8k", GSM, _first_jsonl_row(lambda r: r.pop("question")),
     ["test.jsonl line 1", "'question' is missing"]),
    ("humaneval-no-check", "humaneval", HE, _first_jsonl_row(lambda r: r.update(test="assert True")),
     ["HumanEval.jsonl line 1", "must define check(candidate)"]),
    ("humaneval-entry-point-missing", "humaneval", HE, _first_jsonl_row(lambda r: r.pop("entry_point")),
     ["HumanEval.jsonl line 1", "'entry_point' is missing"]),
    ("bbq-label-out-of-range", "bbq_Age", BBQ, _first_jsonl_row(lambda r: r.update(label=5)),
     ["Age.jsonl line 1", "label must be 0, 1 or 2, got 5"]),
    ("bbq-condition-unknown", "bbq_Age", BBQ, _first_jsonl_row(lambda r: r.update(context_condition="vague")),
     ["Age.jsonl line 1", "context_condition"]),
]


@pytest.fixture
def mirror(tmp_path, fixture_mirror) -> Path:
    shutil.copytree(fixture_mirror, tmp_path / "mirror")
    return tmp_path / "mirror"


@pytest.mark.parametrize("task, rel, damage, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_benchmark_file(wb, mirror, tmp_path, tiny_model_dir, task, rel, damage, needles):
    damage(mirror / rel)
    res = wb("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", task, "--data-dir", mirror,
             "--store", tmp_path / "runs", "--no-progress")
    res.error_line(*needles)
    assert "started" not in res.err  # refused while planning: no model loaded, no run begun
    assert not (tmp_path / "runs").exists() or RunStore(tmp_path / "runs").scan() == ([], [])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_unreadable_benchmark_file(wb, mirror, tmp_path, tiny_model_dir):
    (mirror / MMLU_TEST).chmod(0)
    res = wb("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "mmlu_anatomy", "--data-dir", mirror,
             "--store", tmp_path / "runs")
    res.error_line("cannot read", "anatomy_test.csv", "Permission denied")


# Well formed, if unusual: read exactly as the clean file.
TOLERATED = [
    ("csv-bom", "mmlu", "test", "anatomy", MMLU_TEST, _prepend("\ufeff")),
    ("csv-trailing-blank-lines", "mmlu", "test", "anatomy", MMLU_TEST, _append("\n\n")),
    ("csv-crlf", "mmlu", "test", "anatomy", MMLU_TEST, lambda p: p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))),
    ("jsonl-bom", "arc", "test", "ARC-Easy", ARC, _prepend("\ufeff")),
    ("jsonl-blank-lines", "arc", "test", "ARC-Easy", ARC, lambda p: p.write_text(p.read_text().replace("\n", "\n\n"))),
    ("jsonl-no-final-newline", "arc", "test", "ARC-Easy", ARC, lambda p: p.write_text(p.read_text().rstrip("\n"))),
    ("json-bom", "truthfulqa_mc", "validation", None, TQA, _prepend("\ufeff")),
]


@pytest.mark.parametrize("bench, split, subset, rel, edit", [c[1:] for c in TOLERATED], ids=[c[0] for c in TOLERATED])
def test_odd_but_well_formed_files_read_as_the_clean_one(mirror, fixture_mirror, bench, split, subset, rel, edit):
    clean, _ = data.read_split(data.benchmarks()[bench], split, subset, fixture_mirror)
    edit(mirror / rel)
    rows, [record] = data.read_split(data.benchmarks()[bench], split, subset, mirror)
    assert rows == clean and record.rows == len(clean)


def test_a_multiline_question_is_not_mistaken_for_merged_rows(mirror):
    """Real MMLU questions span lines (code, quoted passages); only a line that is itself a row is refused."""
    _append('"Consider the code:\nx = f(a, b)\nprint(x, y)\nWhat is printed?",1,2,3,4,B\n')(mirror / MMLU_TEST)
    rows, _ = data.read_split(data.benchmarks()["mmlu"], "test", "anatomy", mirror)
    assert rows[-1]["question"].startswith("Consider the code:\nx = f(a, b)") and rows[-1]["answer"] == 1
