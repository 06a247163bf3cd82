import shutil

import pytest

from workbench.errors import DataError
from workbench.eval import data


def bench(name):
    return data.benchmarks()[name]


def test_every_declared_benchmark_reads_from_the_real_mirror_with_sha256(real_data_dir):
    for b in data.benchmarks().values():
        subset = next(iter(b.subsets), None)
        for split in b.splits:
            rows, recs = data.read_split(b, split, subset, real_data_dir)
            assert rows and sum(r.rows for r in recs) == len(rows)
            assert all(len(r.sha256) == 64 and (real_data_dir / r.path).is_file() for r in recs)


def test_mmlu_rows_match_the_hub_schema(real_data_dir):
    rows, [rec] = data.read_split(bench("mmlu"), "test", "anatomy", real_data_dir)
    assert len(rows) == 135  # PROVENANCE.md: test/anatomy_test.csv has 135 rows
    assert rec.sha256 == "966dfd5c4579885ebdb8c05d6754ae5834f672632586d8595be3c0f9360e6f4e"
    assert set(rows[0]) == {"question", "subject", "choices", "answer"}
    assert rows[0]["subject"] == "anatomy" and len(rows[0]["choices"]) == 4 and rows[0]["answer"] in range(4)


def test_truthfulqa_targets_keep_the_true_answer_first(real_data_dir):
    rows, _ = data.read_split(bench("truthfulqa_mc"), "validation", None, real_data_dir)
    assert len(rows) == 817
    assert all(r["mc1_targets"]["labels"][0] == 1 and sum(r["mc1_targets"]["labels"]) == 1 for r in rows)


def test_arc_schema_transform(fixture_mirror):
    rows, _ = data.read_split(bench("arc"), "test", "ARC-Easy", fixture_mirror)
    assert rows[0]["choices"]["label"] == ["A", "B", "C", "D"] and rows[0]["answerKey"] == "A"
    assert rows[2]["choices"]["text"] == ["gas", "liquid", "solid"]


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"missing data file .*mmlu/test/anatomy_test.csv"):
        data.read_split(bench("mmlu"), "test", "anatomy", tmp_path)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("Only three,columns,here\n", "expected 6 columns"),
        ("Q?,a,b,c,d,E\n", "answer must be one of A-D"),
        (",a,b,c,d,A\n", "'question' is missing or empty"),
    ],
)
def test_malformed_mmlu_row_names_file_line_and_reason(fixture_mirror, tmp_path, line, reason):
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror)
    path = mirror / "mmlu/test/anatomy_test.csv"
    path.write_text(path.read_text() + line)
    with pytest.raises(DataError, match=rf"anatomy_test.csv line 9: .*{reason}"):
        data.read_split(bench("mmlu"), "test", "anatomy", mirror)


def test_malformed_json_and_labels_are_reported(fixture_mirror, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror)
    (mirror / "arc/ARC-Easy/ARC-Easy-Test.jsonl").write_text('{"id": 1, "question": {"stem": "x", "choices"\n')
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        data.read_split(bench("arc"), "test", "ARC-Easy", mirror)
    (mirror / "arc/ARC-Easy/ARC-Easy-Test.jsonl").write_text(
        '{"id": "1", "question": {"stem": "x", "choices": [{"text": "a", "label": "A"}]}, "answerKey": "Z"}\n')
    with pytest.raises(DataError, match="answerKey 'Z' is not one of the choice labels"):
        data.read_split(bench("arc"), "test", "ARC-Easy", mirror)
    (mirror / "truthfulqa/v0/mc_task.json").write_text('[{"question": "q", "mc1_targets": {"a": 0, "b": 0}, "mc2_targets": {"a": 1}}]')
    with pytest.raises(DataError, match="exactly one true answer"):
        data.read_split(bench("truthfulqa_mc"), "validation", None, mirror)
