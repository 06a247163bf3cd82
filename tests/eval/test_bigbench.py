"""BIG-bench: rows rebuilt from the task.json files as the hub dataset lm-eval reads (hails/bigbench) was
generated from them by BIG-bench's own code (JsonTask's default formatting and the HF bridge), and lm-eval's
bigbench configs on them."""
import json
import shutil

import pytest

from workbench.errors import DataError
from workbench.eval import data
from workbench.eval import tasks as T

# (task, row, start of `inputs`, end of `inputs`, targets[:2], multiple_choice_targets[:3], number of choices,
#  multiple_choice_scores[:3], idx, subtask). Where the expectations come from: BIG-bench's
#  json_task.default_format_fn (input prefix, choices appended in RandomState(42).permutation(sorted(choices))
#  order where the task appends them, output prefix; the first top-scoring choice as target when none is given),
#  then its HF bridge (task_prefix in front, duplicate examples dropped, subtasks in sorted order with idx
#  restarting, every text field stripped). Checked once against that code on all 81,788 rows.
PINS = [
    ('causal_judgment', 0, 'How would a typical person answer each of the following ques', 'ironment is harmed. Did the CEO intentionally harm the environment?\nA:', ['Yes'], ['Yes', 'No'], 2, [1, 0], 0, ''),
    ('causal_judgment', 189, 'How would a typical person answer each of the following ques', 'tter." Did Bob intentionally improve the health of the townspeople?\nA:', ['No'], ['Yes', 'No'], 2, [0, 1], 189, ''),
    ('date_understanding', 0, 'Q: Yesterday was April 30, 2021. What is the date today in M', 'Yesterday was April 30, 2021. What is the date today in MM/DD/YYYY?\nA:', ['05/01/2021'], ['05/01/2021', '02/23/2021', '03/11/2021'], 6, [1, 0, 0], 0, ''),
    ('date_understanding', 368, 'Q: The first day of 2019 is a Tuesday, and today is the firs', 'irst Monday of 2019. What is the date 24 hours later in MM/DD/YYYY?\nA:', ['01/08/2019'], ['01/08/2019', '01/08/2043', '02/08/2018'], 6, [1, 0, 0], 368, ''),
    ('disambiguation_qa', 0, 'In the following sentences, explain the antecedent of the pr', "  choice: The office was the producers' office\nPronoun identification:", ["The office was Sam's office"], ["The office was the producers' office", "The office was Sam's office", 'Ambiguous'], 3, [0, 1, 0], 0, ''),
    ('disambiguation_qa', 257, 'In the following sentences, explain the antecedent of the pr', ' choice: The undergraduate needed an assistant\nPronoun identification:', ['The scientist needed an assistant'], ['The undergraduate needed an assistant', 'The scientist needed an assistant', 'Ambiguous'], 3, [0, 1, 0], 257, ''),
    ('dyck_languages', 0, 'Complete the rest of the sequence, making sure that the pare', ' parentheses are closed properly. \n\nInput: { [ [ [ { [ ] } ] ]\nOutput:', ['] }'], [')', ']', '>'], 84, [0, 0, 0], 0, ''),
    ('dyck_languages', 999, 'Complete the rest of the sequence, making sure that the pare', 'operly. \n\nInput: [ < > ( ( { ( ) } ) ) [ ] ] ( ) { [ [ < ( ) >\nOutput:', ['] ] }'], [')', ']', '>'], 84, [0, 0, 0], 999, ''),
    ('formal_fallacies_syllogisms_negation', 0, 'Q: "Some football fans admire various clubs, others love onl', 'given the explicitly stated premises, deductively valid or invalid?\nA:', ['valid'], ['valid', 'invalid'], 2, [1, 0], 0, ''),
    ('formal_fallacies_syllogisms_negation', 14199, 'Q: "Here comes a perfectly valid argument: First of all, eve', 'given the explicitly stated premises, deductively valid or invalid?\nA:', ['invalid'], ['valid', 'invalid'], 2, [0, 1], 14199, ''),
    ('geometric_shapes', 0, 'Q: This SVG path element <path d="M 59.43,52.76 L 75.49,27.4', '  choice: triangle\n  choice: line\n  choice: kite\n  choice: pentagon\nA:', ['hexagon'], ['circle', 'heptagon', 'hexagon'], 10, [0, 0, 1], 0, ''),
    ('geometric_shapes', 358, 'Q: This SVG path element <path d="M 38.35,49.41 L 31.18,9.15', '  choice: triangle\n  choice: line\n  choice: kite\n  choice: pentagon\nA:', ['line'], ['circle', 'heptagon', 'hexagon'], 10, [0, 0, 0], 358, ''),
    ('hyperbaton', 0, 'Q: Which sentence has the correct adjective order: a " obnox', 'e " b " glass normal-size brand-new obnoxious purple motorcycle " ?\nA:', ['a'], ['a', 'b'], 2, [1, 0], 0, ''),
    ('hyperbaton', 49999, 'Q: Which sentence has the correct adjective order: a " Vietn', 'ize sock " b " ridiculous medium-size spherical Vietnamese sock " ?\nA:', ['b'], ['a', 'b'], 2, [0, 1], 49999, ''),
    ('logical_deduction', 0, 'The following paragraphs each describe a set of five objects', 'e left of the gray book. The purple book is the second from the right.', ['The black book is the leftmost.'], ['The gray book is the leftmost.', 'The red book is the leftmost.', 'The purple book is the leftmost.'], 5, [0, 0, 0], 0, 'five_objects'),
    ('logical_deduction', 500, 'The following paragraphs each describe a set of seven object', 'e right of the yellow book. The black book is the third from the left.', ['The yellow book is the leftmost.'], ['The black book is the leftmost.', 'The yellow book is the leftmost.', 'The white book is the leftmost.'], 7, [0, 1, 0], 0, 'seven_objects'),
    ('logical_deduction', 1499, 'The following paragraphs each describe a set of three object', 'd-most expensive. The loquats are more expensive than the cantaloupes.', ['The cantaloupes are the cheapest.'], ['The loquats are the cheapest.', 'The watermelons are the cheapest.', 'The cantaloupes are the cheapest.'], 3, [0, 0, 1], 299, 'three_objects'),
    ('movie_recommendation', 0, 'Find a movie similar to Mission Impossible, The Silence of t', 'choice: Alesha Popovich and Tugarin the Dragon\n  choice: In Cold Blood', ['Austin Powers International Man of Mystery'], ['Austin Powers International Man of Mystery', 'Alesha Popovich and Tugarin the Dragon', 'In Cold Blood'], 4, [1, 0, 0], 0, ''),
    ('movie_recommendation', 499, 'Find a movie similar to The Fugitive, The Shawshank Redempti', 'Four Acts\n  choice: Dances with Wolves\n  choice: To Live and Die in LA', ['Dances with Wolves'], ['Dances with Wolves', 'The Snapper', 'When the Levees Broke A Requiem in Four Acts'], 4, [1, 0, 0], 499, ''),
    ('navigate', 0, 'If you follow these instructions, do you return to the start', '. Take 2 steps. Take 3 steps. Turn around. Take 6 steps. Turn left.\nA:', ['True'], ['True', 'False'], 2, [1, 0], 0, ''),
    ('navigate', 999, 'If you follow these instructions, do you return to the start', 'ps. Turn left. Turn right. Turn around. Take 7 steps. Take 8 steps.\nA:', ['True'], ['True', 'False'], 2, [1, 0], 999, ''),
    ('object_counting', 0, 'Q: I have a clarinet, a violin, and a flute. How many musica', 'net, a violin, and a flute. How many musical instruments do I have?\nA:', ['three', '3'], [], 0, [], 0, ''),
    ('object_counting', 999, 'Q: I have two cats, a mouse, two donkeys, a chicken, a bear,', ', a chicken, a bear, a dog, and a fish. How many animals do I have?\nA:', ['nine', '9'], [], 0, [], 999, ''),
    ('penguins_in_a_table', 0, 'Here is a table where the first line is a header and each su', 'ht of Bernard is 80 cm.\n\nWhat animals are listed in the table? Answer:', ['penguins'], ['bears', 'crocodiles', 'elephants'], 5, [0, 0, 0], 0, ''),
    ('penguins_in_a_table', 148, 'Here is a table where the first line is a header and each su', '0\nDonna, 9, 440, 650\nWhat is the cumulated age of the animals? Answer:', ['67'], ['26', '29', '41'], 5, [0, 0, 0], 148, ''),
    ('reasoning_about_colored_objects', 0, 'Q: On the nightstand, you see a mauve stress ball and a purp', ' mauve stress ball and a purple booklet. What color is the booklet?\nA:', ['purple'], ['red', 'orange', 'yellow'], 18, [0, 0, 0], 0, ''),
    ('reasoning_about_colored_objects', 1999, 'Q: On the nightstand, you see several things arranged in a r', ' puzzle. What is the color of the thing furthest from the bracelet?\nA:', ['purple'], ['red', 'orange', 'yellow'], 18, [0, 0, 0], 1999, ''),
    ('ruin_names', 0, 'Q: Which of the following is a humorous edit of this artist ', 're wars\n  choice: stars wars\n  choice: star was\n  choice: stariwars\nA:', ['stare wars'], ['stare wars', 'stariwars', 'stars wars'], 4, [1, 0, 0], 0, ''),
    ('ruin_names', 447, 'Q: Which of the following is a humorous edit of this artist ', 'e: dangerous pies\n  choice: dangeroous lies\n  choice: dangerous lie\nA:', ['dangerous pies'], ['dangerous pies', 'dangerous lie', 'dangeroous lies'], 4, [1, 0, 0], 447, ''),
    ('salient_translation_error_detection', 0, 'The following translations from German to English contain a ', 'of herb in the family.\nThe translation contains an error pertaining to', ['Numerical Values'], ['Modifiers or Adjectives', 'Numerical Values', 'Negation or Antonyms'], 6, [0, 1, 0], 0, ''),
    ('salient_translation_error_detection', 997, 'The following translations from German to English contain a ', 'ted States and Canada.\nThe translation contains an error pertaining to', ['Named Entities'], ['Modifiers or Adjectives', 'Numerical Values', 'Negation or Antonyms'], 6, [0, 0, 0], 997, ''),
    ('snarks', 0, 'Q: Which statement is sarcastic? (a) Protein supplements are', 'tein supplements are way more expensive than $1 breakfast burritos.\nA:', ['(b)'], ['(a)', '(b)'], 2, [0, 1], 0, ''),
    ('snarks', 180, 'Q: Which statement is sarcastic? (a) Wow, you only applied t', 'st week? (b) Wow, you only applied to 2 internships this past week?\nA:', ['(a)'], ['(a)', '(b)'], 2, [1, 0], 180, ''),
    ('sports_understanding', 0, 'Determine whether the following statement or statements are ', 'atement: Jamal Murray was perfect from the line\nPlausible/implausible?', ['plausible'], ['plausible', 'implausible'], 2, [1, 0], 0, ''),
    ('sports_understanding', 985, 'Determine whether the following statement or statements are ', '\nStatement: Javier Zanetti earned a direct kick\nPlausible/implausible?', ['plausible'], ['plausible', 'implausible'], 2, [1, 0], 985, ''),
    ('temporal_sequences', 0, 'Today, Susan went to the coffee shop. Between what times cou', ' 7am to 11am\n  choice: 1pm to 2pm\n  choice: 6pm to 9pm\nPossible times:', ['6pm to 9pm'], ['6pm to 9pm', '7am to 11am', '2pm to 6pm'], 4, [1, 0, 0], 0, ''),
    ('temporal_sequences', 999, 'Today, Tiffany went to the beach. Between what times could t', '9am to 12pm\n  choice: 12pm to 2pm\n  choice: 5am to 6am\nPossible times:', ['3pm to 4pm'], ['3pm to 4pm', '5am to 6am', '12pm to 2pm'], 4, [1, 0, 0], 999, ''),
    ('tracking_shuffled_objects', 0, 'Alice, Bob, Claire, Dave, and Eve are playing a game. At the', 'ly, Alice and Claire swap balls. At the end of the game, Alice has the', ['pink ball.'], ['pink ball.', 'white ball.', 'red ball.'], 5, [1, 0, 0], 0, 'five_objects'),
    ('tracking_shuffled_objects', 1250, 'Alice, Bob, Claire, Dave, Eve, Fred, and Gertrude are playin', 'ally, Eve and Claire swap balls. At the end of the game, Alice has the', ['black ball.'], ['green ball.', 'white ball.', 'yellow ball.'], 7, [0, 0, 0], 0, 'seven_objects'),
    ('tracking_shuffled_objects', 3749, 'Alice, Bob, and Claire are dancers at a square dance. At the', 'Alice switch partners. At the end of the dance, Claire is dancing with', ['Helga.'], ['Izzi.', 'Helga.', 'Melissa.'], 3, [0, 1, 0], 749, 'three_objects'),
    ('word_sorting', 0, 'Sort the following words alphabetically:\nList: stick gelatin', 'Sort the following words alphabetically:\nList: stick gelatine\nSorted:', ['gelatine stick'], [], 0, [], 0, ''),
    ('word_sorting', 1899, 'Sort the following words alphabetically:\nList: electrolytic ', 'opeland circumcircle prig sap pore crutch heritage inattention\nSorted:', ['adroit agrarian boxy cayley circumcircle copeland crutch davit electrolytic heritage inattention latitudinal monica picnicking pore prig sap seaside sort workhorse'], [], 0, [], 1899, ''),
]


@pytest.fixture(scope="module")
def rows(real_data_dir):
    bench = data.benchmarks()["bigbench"]
    return {t: data.read_split(bench, "default", t, real_data_dir)[0] for t in {p[0] for p in PINS}}


@pytest.mark.parametrize("pin", PINS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_rows_are_formatted_as_bigbench_formats_them(rows, pin):
    task, i, start, end, targets, mc, n_choices, scores, idx, subtask = pin
    row = rows[task][i]
    assert row["inputs"].startswith(start) and row["inputs"].endswith(end)
    assert row["targets"][:2] == targets and row["multiple_choice_targets"][:3] == mc
    assert len(row["multiple_choice_targets"]) == len(row["multiple_choice_scores"]) == n_choices
    assert row["multiple_choice_scores"][:3] == scores and row["idx"] == idx and row["subtask"] == subtask


def test_counts_match_the_provenance_after_bigbench_drops_duplicates(rows, real_data_dir):
    bench = data.benchmarks()["bigbench"]
    counts = {t: sum(r.rows for r in data.read_split(bench, "default", t, real_data_dir)[1]) for t in bench.subsets}
    assert len(counts) == 20 and sum(counts.values()) == 81_788
    # PROVENANCE.md lists 360 and 1000 examples; BIG-bench's JsonTask keeps 359 and 986 distinct ones.
    assert counts["geometric_shapes"] == 359 and counts["sports_understanding"] == 986
    assert counts["hyperbaton"] == 50_000 and counts["tracking_shuffled_objects"] == 3_750


def test_a_task_with_subtasks_pins_every_file(real_data_dir):
    _, recs = data.read_split(data.benchmarks()["bigbench"], "default", "logical_deduction", real_data_dir)
    assert [(r.path, r.rows) for r in recs] == [
        ("bigbench/logical_deduction/task.json", 0), ("bigbench/logical_deduction/five_objects/task.json", 500),
        ("bigbench/logical_deduction/seven_objects/task.json", 700),
        ("bigbench/logical_deduction/three_objects/task.json", 300)]
    assert recs[1].sha256 == "552dec4d5067bdbe033e78e80fdf1f5a8061d17b385379b8ec5104fa17d07918"


def test_lm_eval_configs_score_the_choices_after_the_inputs(real_data_dir):
    built = T.build(T.resolve(["bigbench_ruin_names_multiple_choice"])[0], real_data_dir)
    assert built.num_fewshot == 0 and built.task.OUTPUT_TYPE == "multiple_choice"
    built.task.build_all_requests(samples=[0], rank=0, world_size=1)
    args = [i.args for i in sorted(built.task.instances, key=lambda i: i.idx)]
    assert args[0][0].endswith("\n  choice: stariwars\nA:")
    assert [a[1] for a in args] == [" stare wars", " stariwars", " stars wars", " star was"]
    assert built.task.doc_to_target(built.task.eval_docs[0]) == 0
    gen = T.build(T.resolve(["bigbench_object_counting_generate_until"])[0], real_data_dir)
    assert gen.task.doc_to_target(gen.task.eval_docs[0]) == "three"


def test_registry_groups_and_quick_suite(real_data_dir):
    groups = T.groups()
    assert len(groups["bigbench"]) == 20 and len(groups["bigbench_generate_until"]) == 18
    assert {n for n in groups["bigbench"] if n.endswith("_generate_until")} == {
        "bigbench_object_counting_generate_until", "bigbench_word_sorting_generate_until"}
    from workbench.eval.harness import EvalRequest, plan_tasks

    planned = plan_tasks(EvalRequest(model="smollm2-135m", tasks=["bigbench"], data_dir=str(real_data_dir)))
    assert len(planned) == 20
    quick = T.suite_tasks("quick")["bigbench"]
    sizes = {b.spec.name: len(T.select_docs(b.spec.name, len(b.task.eval_docs), limit=None,
                                             n=quick["per_subset"], seed=1234)) for b, _ in planned}
    assert set(sizes.values()) == {quick["per_subset"]}  # stratified: the same number from every task


@pytest.mark.parametrize("example, reason", [
    ({"target_scores": {"a": 1, "b": 0}}, "no 'input' string"),
    ({"input": "q"}, "neither 'target' nor 'target_scores'"),
    ({"input": "q", "target_scores": {"a": 0, "b": 0}}, "marks no choice as correct"),
    ({"input": "q", "target_scores": {"a": "yes"}}, "values must be numbers"),
    ({"input": "q", "target": "c", "target_scores": {"a": 1, "b": 0}}, "is not one of the 'target_scores' choices"),
    ("just a string", "must be an object"),
])
def test_a_broken_example_names_file_example_and_reason(real_data_dir, tmp_path, example, reason):
    mirror = tmp_path / "mirror"
    (mirror / "bigbench" / "snarks").mkdir(parents=True)
    task = json.loads((real_data_dir / "bigbench/snarks/task.json").read_text())
    task["examples"] = task["examples"][:2] + [example]
    (mirror / "bigbench/snarks/task.json").write_text(json.dumps(task))
    with pytest.raises(DataError, match=rf"snarks/task.json example 3: .*{reason}"):
        data.read_split(data.benchmarks()["bigbench"], "default", "snarks", mirror)


def test_a_broken_task_json_is_one_clear_cli_error(run_cli, real_data_dir, tmp_path, tiny_model_dir):
    mirror = tmp_path / "mirror"
    shutil.copytree(real_data_dir / "bigbench" / "navigate", mirror / "bigbench" / "navigate")
    path = mirror / "bigbench/navigate/task.json"
    task = json.loads(path.read_text())
    del task["examples"][4]["target_scores"]
    path.write_text(json.dumps(task))
    store = tmp_path / "store"
    res = run_cli("eval", "--model", f"hf:{tiny_model_dir}", "--tasks", "bigbench_navigate_multiple_choice",
                  "--data-dir", str(mirror), "--store", str(store))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("workbench: error:")]
    assert len(lines) == 1 and "navigate/task.json example 5" in lines[0], res.stderr
    assert not store.exists() or not any(store.rglob("*"))
