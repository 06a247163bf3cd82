"""Row transforms: a mirror file's raw row -> the schema lm-eval's task configs expect (the hub's).

A benchmark YAML names one of these under `mirror.schema`. A new benchmark in a known layout is a
config file; a new raw layout is one function here. Each raises ValueError with the reason when a
row is malformed; the data layer adds the file and row number.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from workbench.errors import DataError
from workbench.registry import Registry

Row = dict[str, Any]
Transform = Callable[[Row, str | None], Row]
SCHEMAS: Registry[Transform] = Registry("row schema", error=DataError)


def schema(name: str) -> Callable[[Transform], Transform]:
    return SCHEMAS.register(name)


def _text(row: Row, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {key!r} is missing or empty")
    return value


@schema("mmlu_csv")
def mmlu_csv(row: Row, subset: str | None) -> Row:
    """Hendrycks CSV (question, A, B, C, D, letter) -> cais/mmlu (question, subject, choices, answer)."""
    letter = str(row.get("answer", "")).strip()
    if letter not in ("A", "B", "C", "D"):
        raise ValueError(f"answer must be one of A-D, got {letter!r}")
    choices = [row.get(k) for k in "ABCD"]
    if any(c is None for c in choices):
        raise ValueError("expected 6 columns: question, A, B, C, D, answer")
    return {
        "question": _text(row, "question"),
        "subject": subset or "",
        "choices": [str(c) for c in choices],
        "answer": "ABCD".index(letter),
    }


@schema("arc_ai2")
def arc_ai2(row: Row, subset: str | None) -> Row:
    """AI2 ARC JSONL ({id, question: {stem, choices[{text,label}]}, answerKey}) -> allenai/ai2_arc."""
    q = row.get("question")
    if not isinstance(q, dict) or not isinstance(q.get("choices"), list) or not q["choices"]:
        raise ValueError("'question' must be an object with 'stem' and a non-empty 'choices' list")
    labels = [str(c.get("label")) for c in q["choices"]]
    key = str(row.get("answerKey", ""))
    if key not in labels:
        raise ValueError(f"answerKey {key!r} is not one of the choice labels {labels}")
    return {
        "id": str(row.get("id", "")),
        "question": _text(q, "stem"),
        "choices": {"text": [str(c.get("text", "")) for c in q["choices"]], "label": labels},
        "answerKey": key,
    }


def _targets(obj: Any, name: str) -> dict[str, list]:
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{name!r} must be a non-empty object mapping answer -> 0/1")
    if any(v not in (0, 1) for v in obj.values()):
        raise ValueError(f"{name!r} labels must be 0 or 1")
    return {"choices": list(obj.keys()), "labels": [int(v) for v in obj.values()]}


@schema("truthfulqa_mc_json")
def truthfulqa_mc_json(row: Row, subset: str | None) -> Row:
    """Original mc_task.json ({question, mc1_targets{ans: 0/1}, mc2_targets}) -> truthful_qa MC."""
    mc1 = _targets(row.get("mc1_targets"), "mc1_targets")
    if sum(mc1["labels"]) != 1:
        raise ValueError("mc1_targets must have exactly one true answer")
    # lm-eval scores doc_to_target=0: the true MC1 answer must come first, as upstream writes it.
    if mc1["labels"][0] != 1:
        raise ValueError("mc1_targets must list the true answer first")
    return {
        "question": _text(row, "question"),
        "mc1_targets": mc1,
        "mc2_targets": _targets(row.get("mc2_targets"), "mc2_targets"),
    }


@schema("humaneval_jsonl")
def humaneval_jsonl(row: Row, subset: str | None) -> Row:
    """openai/human-eval JSONL -> openai/openai_humaneval (same fields, checked)."""
    out = {k: _text(row, k) for k in ("task_id", "prompt", "test", "entry_point")}
    out["canonical_solution"] = str(row.get("canonical_solution") or "")
    if "def check(" not in out["test"]:
        raise ValueError("'test' must define check(candidate)")
    return out


@schema("gsm8k_jsonl")
def gsm8k_jsonl(row: Row, subset: str | None) -> Row:
    """openai/grade-school-math JSONL -> openai/gsm8k `main` (question, answer ending in '#### N')."""
    answer = _text(row, "answer")
    if "####" not in answer:
        raise ValueError("'answer' has no '#### <number>' final-answer line")
    return {"question": _text(row, "question"), "answer": answer}


@schema("advbench_csv")
def advbench_csv(row: Row, subset: str | None) -> Row:
    """AdvBench harmful_behaviors.csv (goal, target) -> {prompt, target}."""
    return {"prompt": _text(row, "goal"), "target": str(row.get("target") or "")}


@schema("harmbench_csv")
def harmbench_csv(row: Row, subset: str | None) -> Row:
    """HarmBench behaviours CSV -> {prompt, behavior_id, functional_category, semantic_category}."""
    behavior, context = _text(row, "Behavior"), str(row.get("ContextString") or "").strip()
    return {
        "prompt": f"{context}\n\n---\n\n{behavior}" if context else behavior,
        "behavior_id": _text(row, "BehaviorID"),
        "functional_category": _text(row, "FunctionalCategory"),
        "semantic_category": _text(row, "SemanticCategory"),
    }


@schema("xstest_csv")
def xstest_csv(row: Row, subset: str | None) -> Row:
    """XSTest prompts CSV (id, prompt, type, label, focus, note); label must be safe or unsafe."""
    label = str(row.get("label", "")).strip()
    if label not in ("safe", "unsafe"):
        raise ValueError(f"label must be 'safe' or 'unsafe', got {label!r}")
    return {"id": str(row.get("id", "")), "prompt": _text(row, "prompt"), "type": _text(row, "type"), "label": label,
            "focus": str(row.get("focus") or ""), "note": str(row.get("note") or "")}


_BBQ_ANSWERS = ("ans0", "ans1", "ans2")


@schema("bbq_jsonl")
def bbq_jsonl(row: Row, subset: str | None) -> Row:
    """nyu-mll/BBQ JSONL (one category per file) -> the same fields, checked (lm-eval's bbq schema)."""
    label = row.get("label")
    if label not in (0, 1, 2):
        raise ValueError(f"label must be 0, 1 or 2, got {label!r}")
    if row.get("context_condition") not in ("ambig", "disambig"):
        raise ValueError(f"context_condition must be 'ambig' or 'disambig', got {row.get('context_condition')!r}")
    if row.get("question_polarity") not in ("neg", "nonneg"):
        raise ValueError(f"question_polarity must be 'neg' or 'nonneg', got {row.get('question_polarity')!r}")
    info, meta = row.get("answer_info"), row.get("additional_metadata")
    if not isinstance(info, dict) or any(not isinstance(info.get(a), list) for a in _BBQ_ANSWERS):
        raise ValueError("'answer_info' must map ans0, ans1, ans2 to [text, group] lists")
    if not isinstance(meta, dict) or not isinstance(meta.get("stereotyped_groups"), list):
        raise ValueError("'additional_metadata.stereotyped_groups' must be a list")
    if sum(1 for a in _BBQ_ANSWERS if info[a] and info[a][-1] == "unknown") != 1:
        raise ValueError("exactly one answer must be tagged 'unknown' in answer_info")
    return {
        "example_id": int(row.get("example_id", -1)),
        "question_index": str(row.get("question_index", "")),
        "question_polarity": row["question_polarity"],
        "context_condition": row["context_condition"],
        "category": _text(row, "category"),
        "answer_info": {a: [str(x) for x in info[a]] for a in _BBQ_ANSWERS},
        "additional_metadata": {
            "subcategory": str(meta.get("subcategory", "")),
            "stereotyped_groups": [str(g) for g in meta["stereotyped_groups"]],
            "version": str(meta.get("version", "")),
            "source": str(meta.get("source", "")),
        },
        "context": _text(row, "context"),
        "question": _text(row, "question"),
        **{a: _text(row, a) for a in _BBQ_ANSWERS},
        "label": label,
    }


@schema("truthfulqa_gen_csv")
def truthfulqa_gen_csv(row: Row, subset: str | None) -> Row:
    """TruthfulQA.csv -> truthful_qa `generation` (the hub script's fields; answers split on ';')."""
    out = {"type": str(row.get("Type") or ""), "category": str(row.get("Category") or ""),
           "question": _text(row, "Question"), "best_answer": str(row.get("Best Answer") or ""),
           "source": str(row.get("Source") or "")}
    for key, col in (("correct_answers", "Correct Answers"), ("incorrect_answers", "Incorrect Answers")):
        out[key] = [a.strip() for a in _text(row, col).strip().split(";")]
    return out


# ---- BIG-bench JSON tasks -------------------------------------------------------------------------
# The hub dataset lm-eval's `bigbench_*` tasks read (hails/bigbench, `<task>_zero_shot`, split `default`)
# was generated by the `bigbench` package's HF bridge from these task.json files. Its rows are rebuilt
# here as that code builds them: JsonTask's default format function (prefixes, choices appended to the
# input in a fixed seeded order), the task prefix in front, then every text field stripped.
_BB_DEFAULTS = {"example_input_prefix": "\nQ: ", "example_output_prefix": "\nA: ", "choice_prefix": "\n  choice: ",
                "append_choices_to_input": True, "task_prefix": ""}
_BB_MC_METRICS = frozenset({"multiple_choice_grade", "calibration_multiple_choice_brier_score",
                            "expected_calibration_error", "weighted_log_probabilities", "weighted_probabilities",
                            "macro_f1"})


def _bb_choices_in_input_order(choices: list[str]) -> list[str]:
    """BIG-bench appends the choices in `RandomState(42).permutation(sorted(choices))` order: a fresh
    generator per example, so the order is a fixed permutation of the sorted choices for each count."""
    return [sorted(choices)[i] for i in _bb_permutation(len(choices))]


@cache
def _bb_permutation(n: int) -> tuple[int, ...]:
    import numpy as np

    return tuple(int(i) for i in np.random.RandomState(seed=42).permutation(n))


@schema("bigbench_json")
def bigbench_json(row: Row, subset: str | None) -> Row:
    """One BIG-bench example (with its task's formatting fields) -> hails/bigbench
    (inputs, targets, multiple_choice_targets, multiple_choice_scores, idx)."""
    ex, task = row.get("example"), {**_BB_DEFAULTS, **(row.get("task") or {})}
    if not isinstance(ex, dict):
        raise ValueError("an example must be an object with 'input' and 'target' or 'target_scores'")
    text = ex.get("input")
    if not isinstance(text, str):
        raise ValueError("example has no 'input' string")
    if "target" not in ex and "target_scores" not in ex:
        raise ValueError("example has neither 'target' nor 'target_scores'")
    scores = ex.get("target_scores")
    if scores is None and _BB_MC_METRICS.intersection(task.get("metrics") or ()):
        raise ValueError("example has no 'target_scores', which the task's multiple-choice metrics need")
    choices: list[str] = []
    top = None
    if scores is not None:
        if not isinstance(scores, dict) or not scores:
            raise ValueError("'target_scores' must be a non-empty object mapping choice -> score")
        if not all(type(v) in (int, float) for v in scores.values()):
            raise ValueError("'target_scores' values must be numbers")
        choices = [str(c) for c in scores]
        top, low = max(scores.values()), min(scores.values())
        if (len(scores) == 1 and top == 0) or (len(scores) > 1 and top <= low):
            raise ValueError("'target_scores' marks no choice as correct")
        if task["append_choices_to_input"]:
            prefix = task["choice_prefix"]
            text = text + prefix + prefix.join(_bb_choices_in_input_order(choices))
    if "target" in ex:
        target = ex["target"]
        targets = target if isinstance(target, list) else [target]
        if not targets or not all(isinstance(t, str) for t in targets):
            raise ValueError("'target' must be a string or a non-empty list of strings")
        if choices and targets[0].strip() not in {c.strip() for c in choices}:
            raise ValueError(f"'target' {targets[0]!r} is not one of the 'target_scores' choices")
    else:  # the first choice with the highest score, as JsonTask picks it
        targets = [next(c for c, v in scores.items() if v == top)]
    inputs = str(task["task_prefix"]) + task["example_input_prefix"] + text + task["example_output_prefix"]
    return {
        "idx": int(row.get("idx", 0)),
        "inputs": inputs.strip(),
        "targets": [t.strip() for t in targets],
        "multiple_choice_targets": [c.strip() for c in choices],
        "multiple_choice_scores": [int(v) for v in (scores or {}).values()],
        "subtask": row.get("subtask") or "",
    }


# ---- documents for perplexity ---------------------------------------------------------------------
def _document(text: Any, what: str) -> Row:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string")
    if not text.strip():
        raise ValueError(f"empty document ({what} has no text)")
    return {"text": text}


@schema("document_text")
def document_text(row: Row, subset: str | None) -> Row:
    """A text file, or a JSONL line with a `text` field -> one document {text}."""
    if not isinstance(row, dict) or "text" not in row:
        raise ValueError("a JSONL document needs a 'text' field")
    return _document(row["text"], "'text'")


@schema("humaneval_document")
def humaneval_document(row: Row, subset: str | None) -> Row:
    """A HumanEval problem -> the document prompt + canonical solution (the reference program)."""
    return {"task_id": _text(row, "task_id"),
            **_document(_text(row, "prompt") + _text(row, "canonical_solution"), "prompt + canonical_solution")}


@schema("gsm8k_solution")
def gsm8k_solution(row: Row, subset: str | None) -> Row:
    """A GSM8K problem -> its worked solution (the `answer` field, calculator annotations and '#### N' kept)."""
    return _document(_text(row, "answer"), "'answer'")
