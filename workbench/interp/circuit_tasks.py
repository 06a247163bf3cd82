"""Clean/corrupted prompt pairs for circuit discovery: IOI, greater-than, or a user's JSONL file.

Each example scores the final-position logits as a weighted sum over a few candidate tokens: the logit
difference answer - wrong (IOI, user files), or a probability difference (greater-than). A task is a
registered builder `(model, n, seed) -> TaskData`; `load_task(name_or_path, ...)` also reads JSONL files
of `{"clean", "corrupt", "answer", "wrong"}` rows (answer and wrong single tokens).

IOI (Wang et al. 2022): the 15 BABA templates and their ABBA twins, with the paper's names, places and
objects; names kept only where " Name" is one token for the model's tokenizer. The corrupted prompt
replaces the second occurrence of the subject with a third name (the "ABC" distribution), so nothing in
it says which of the first two names is the indirect object. Metric: logit(IO) - logit(S).

Greater-than (Hanna et al. 2023): "The {noun} lasted from the year {cc}{yy} to the year {cc}" and the
model's next tokens should make a year above {cc}{yy}; corrupted: the start year {cc}01. The paper's
GPT-2 reads "{yy}" as one token; SmolLM2 and Gemma 3 split numbers into single digits, so the prompt
ends after the century digits and the next token is the tens digit d of the end year. Metric:
P(d > tens of yy) - P(d < tens of yy) (a tie d = tens can still be right or wrong, so it counts neither way);
start years have tens digits 2..8 so both sides exist.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.interp.errors import InterpError, TokenError
from workbench.registry import Registry


@dataclass(frozen=True)
class Example:
    clean: str
    corrupt: str
    answer: str                 # display text of what counts as right
    wrong: str                  # ... and as wrong
    ids: tuple[int, ...]        # candidate token ids
    weights: tuple[float, ...]  # metric = sum_i weights[i] * value(ids[i]), value = logit or probability


@dataclass
class TaskData:
    name: str
    metric: str                 # "logit_diff" | "prob_diff"
    examples: list[Example]
    params: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[Any, int, int], TaskData]
TASKS: Registry[Builder] = Registry("circuit task", error=InterpError)


def register_task(name: str) -> Callable[[Builder], Builder]:
    return TASKS.register(name)


def one_token(model: Any, text: str) -> int | None:
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


# ---- IOI (Wang et al. 2022) ---------------------------------------------------------------------
BABA_TEMPLATES = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to",
)
PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
OBJECTS = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")
NAMES = (
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Anderson", "Andre", "Andrew", "Andy", "Anna", "Anthony",
    "Arthur", "Austin", "Blake", "Brandon", "Brian", "Carter", "Charles", "Charlie", "Christian", "Christopher",
    "Clark", "Cole", "Collins", "Connor", "Crew", "Crystal", "Daniel", "David", "Dean", "Edward", "Elizabeth",
    "Emily", "Eric", "Eva", "Ford", "Frank", "George", "Georgia", "Graham", "Grant", "Henry", "Ian", "Jack",
    "Jacob", "Jake", "James", "Jamie", "Jane", "Jason", "Jay", "Jennifer", "Jeremy", "Jessica", "John",
    "Jonathan", "Jordan", "Joseph", "Joshua", "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leon",
    "Lewis", "Lisa", "Louis", "Luke", "Madison", "Marco", "Marcus", "Maria", "Mark", "Martin", "Mary",
    "Matthew", "Max", "Michael", "Michelle", "Morgan", "Patrick", "Paul", "Peter", "Prince", "Rachel",
    "Richard", "River", "Robert", "Roman", "Rose", "Ruby", "Russell", "Ryan", "Sarah", "Scott", "Sean",
    "Simon", "Stephen", "Steven", "Sullivan", "Taylor", "Thomas", "Tyler", "Victoria", "Warren", "William",
)


def abba(template: str) -> str:
    """The ABBA twin of a BABA template: the first two names swap places."""
    return template.replace("[B] and [A]", "[A] and [B]", 1)


def _fill(template: str, a: str, b: str, place: str, obj: str, second_b: str | None = None) -> str:
    text = template.replace("[PLACE]", place).replace("[OBJECT]", obj).replace("[A]", a)
    first = text.index("[B]")
    text = text[:first] + b + text[first + 3:]
    return text.replace("[B]", second_b if second_b is not None else b)


@register_task("ioi")
def ioi(model: Any, n: int, seed: int) -> TaskData:
    """`n` IOI prompts (half ABBA, half BABA) with ABC corruptions, seeded."""
    names = [nm for nm in NAMES if one_token(model, " " + nm) is not None]
    if len(names) < 3:
        raise InterpError(f"fewer than 3 IOI names are single tokens for {model.spec}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        template = BABA_TEMPLATES[int(rng.integers(len(BABA_TEMPLATES)))]
        if i % 2 == 0:
            template = abba(template)
        a, b, c = (str(x) for x in rng.choice(names, size=3, replace=False))
        place, obj = str(rng.choice(PLACES)), str(rng.choice(OBJECTS))
        clean = _fill(template, a, b, place, obj)
        corrupt = _fill(template, a, b, place, obj, second_b=c)
        out.append(Example(clean, corrupt, " " + a, " " + b, (one_token(model, " " + a), one_token(model, " " + b)),
                           (1.0, -1.0)))
    return TaskData("ioi", "logit_diff", out, {"single_token_names": len(names), "corruption": "ABC (second S -> C)"})


# ---- greater-than (Hanna et al. 2023) -------------------------------------------------------------
NOUNS = (
    "abduction", "accord", "affair", "agreement", "appraisal", "assaults", "assessment", "attack", "attempts",
    "campaign", "captivity", "case", "challenge", "chaos", "clash", "collaboration", "coma", "competition",
    "confrontation", "consequence", "conspiracy", "construction", "consultation", "contact", "contract",
    "convention", "cooperation", "custody", "deal", "decline", "decrease", "demonstrations", "development",
    "disagreement", "disorder", "dispute", "domination", "dynasty", "effect", "effort", "employment",
    "endeavor", "engagement", "epidemic", "evaluation", "exchange", "existence", "expansion", "expedition",
    "experiments", "fall", "fame", "flights", "friendship", "growth", "hardship", "hostility", "illness",
    "impact", "imprisonment", "improvement", "incarceration", "increase", "insurgency", "invasion",
    "investigation", "journey", "kingdom", "marriage", "modernization", "negotiation", "notoriety",
    "obstruction", "operation", "order", "outbreak", "outcome", "overhaul", "patrols", "pilgrimage", "plague",
    "plan", "practice", "process", "program", "progress", "project", "pursuit", "quest", "raids", "reforms",
    "reign", "relationship", "retaliation", "riot", "rise", "rivalry", "romance", "rule", "sanctions", "shift",
    "siege", "slump", "stature", "stint", "strikes", "study", "test", "testing", "tests", "therapy", "tour",
    "tradition", "treaty", "trial", "trip", "unemployment", "voyage", "warfare", "work",
)
GT_TEMPLATE = "The {noun} lasted from the year {start} to the year {century}"


@register_task("greater_than")
def greater_than(model: Any, n: int, seed: int) -> TaskData:
    """`n` greater-than prompts; the metric reads the end year's tens digit (digit-level tokenizers)."""
    digits = [one_token(model, str(d)) for d in range(10)]
    if any(d is None for d in digits):
        raise InterpError(f"greater_than needs the digits 0-9 as single tokens for {model.spec}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noun = str(rng.choice(NOUNS))
        century = int(rng.integers(11, 18))
        yy = int(rng.integers(20, 90))
        tens = yy // 10
        clean = GT_TEMPLATE.format(noun=noun, start=f"{century}{yy:02d}", century=century)
        corrupt = GT_TEMPLATE.format(noun=noun, start=f"{century}01", century=century)
        weights = tuple(1.0 if d > tens else -1.0 if d < tens else 0.0 for d in range(10))
        out.append(Example(clean, corrupt, f"tens digit > {tens}", f"tens digit < {tens}", tuple(digits), weights))
    return TaskData("greater_than", "prob_diff", out,
                    {"readout": "tens digit of the end year (numbers tokenise digit by digit)", "corrupt_start": "01"})


# ---- user JSONL ---------------------------------------------------------------------------------
FIELDS = ("clean", "corrupt", "answer", "wrong")


def load_jsonl(path: str | os.PathLike, model: Any, n: int | None = None) -> TaskData:
    """Examples from a JSONL file of {clean, corrupt, answer, wrong}; one clear error per bad line."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"circuit task {str(path)!r} is neither a known task ({', '.join(TASKS.names())}) "
                          "nor a JSONL file")
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InterpError(f"{p.name} line {i}: not JSON ({exc.msg})") from None
        missing = [f for f in FIELDS if not isinstance(row, dict) or not isinstance(row.get(f), str)]
        if missing:
            raise InterpError(f"{p.name} line {i}: missing or non-string field(s) {', '.join(missing)} "
                              f"(each line needs {', '.join(FIELDS)})")
        ids = []
        for f in ("answer", "wrong"):
            tid = one_token(model, row[f])
            if tid is None:
                raise TokenError(f"{p.name} line {i}: {f} {row[f]!r} is not a single token for {model.spec}")
            ids.append(tid)
        out.append(Example(row["clean"], row["corrupt"], row["answer"], row["wrong"], tuple(ids), (1.0, -1.0)))
        if n is not None and len(out) >= n:
            break
    if not out:
        raise InterpError(f"{p.name} has no examples")
    return TaskData(p.stem, "logit_diff", out, {"file": str(p.resolve())})


def load_task(task: str, model: Any, n: int, seed: int = 0) -> TaskData:
    """A registered task's `n` examples, or the first `n` rows of a JSONL file."""
    if task in TASKS:
        return TASKS.get(task)(model, n, seed)
    if task.endswith(".jsonl") or os.sep in task or Path(task).exists():
        return load_jsonl(task, model, n)
    return TASKS.get(task)(model, n, seed)  # unknown name: the registry's error names the close ones


__all__ = ["Example", "TASKS", "TaskData", "load_jsonl", "load_task", "register_task"]
