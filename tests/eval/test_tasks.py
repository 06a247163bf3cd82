import pytest

from workbench.errors import TaskError
from workbench.eval import tasks as T


def test_registry_covers_the_issue_tasks():
    specs, groups = T.registry(), T.groups()
    assert len(groups["mmlu"]) == 57 and len(groups["mmlu_cloze"]) == 57
    for name in ("mmlu_anatomy", "mmlu_cloze_anatomy", "arc_easy", "arc_challenge", "truthfulqa_mc1", "truthfulqa_mc2"):
        assert name in specs


def test_unknown_task_suggests_close_names():
    with pytest.raises(TaskError, match="did you mean mmlu_anatomy"):
        T.resolve(["mmlu_anatomyy"])


def test_unknown_suite_lists_known_ones():
    with pytest.raises(TaskError, match="known suites: full, quick"):
        T.suite_tasks("nope")


def test_builtin_lm_eval_prompt_is_reused_on_mirror_data(fixture_mirror):
    built = T.build(T.resolve(["mmlu_anatomy"])[0], fixture_mirror, fewshot_seed=1234)
    assert built.num_fewshot == 5 and built.version == 1.0
    built.task.build_all_requests(limit=1, rank=0, world_size=1)
    ctx = built.task.instances[0].args[0]
    # lm-eval's mmlu/default template: description, 5 dev shots (first_n), then the question.
    assert ctx.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert ctx.count("Answer:") == 6 and ctx.endswith("D. Radius\nAnswer:")
    assert [i.args[1] for i in built.task.instances] == [" A", " B", " C", " D"]


def test_num_fewshot_override_respects_tasks_that_pin_zero(fixture_mirror):
    assert T.build(T.resolve(["mmlu_anatomy"])[0], fixture_mirror, num_fewshot=2).num_fewshot == 2
    assert T.build(T.resolve(["truthfulqa_mc1"])[0], fixture_mirror, num_fewshot=2).num_fewshot == 0


def test_prompt_hash_changes_with_the_template(fixture_mirror):
    a = T.build(T.resolve(["mmlu_anatomy"])[0], fixture_mirror)
    b = T.build(T.resolve(["mmlu_anatomy"])[0], fixture_mirror, num_fewshot=0)
    c = T.build(T.resolve(["mmlu_cloze_anatomy"])[0], fixture_mirror)
    assert len({a.prompt_hash, b.prompt_hash, c.prompt_hash}) == 3
    assert a.prompt_hash == T.build(T.resolve(["mmlu_anatomy"])[0], fixture_mirror).prompt_hash


def test_doc_selection_is_seeded_and_limit_is_first_n():
    assert T.select_docs("t", 100, limit=5, n=None, seed=1) == [0, 1, 2, 3, 4]
    a = T.select_docs("t", 100, limit=None, n=10, seed=1)
    assert a == T.select_docs("t", 100, limit=None, n=10, seed=1) == sorted(a) and len(set(a)) == 10
    assert a != T.select_docs("t", 100, limit=None, n=10, seed=2)
    assert T.select_docs("t", 3, limit=None, n=10, seed=1) == [0, 1, 2]


def test_quick_suite_draws_seeded_subjects_and_items(real_data_dir):
    from workbench.eval.harness import EvalRequest, plan_tasks

    planned = plan_tasks(EvalRequest(model="smollm2-135m", suite="quick", data_dir=str(real_data_dir)))
    per_task = {b.spec.name: ids for b, ids in planned}
    mmlu = [n for n in per_task if n.startswith("mmlu_") and not n.startswith("mmlu_cloze")]
    assert len(mmlu) == 12 and all(len(per_task[n]) == 4 for n in mmlu)  # 12 subjects x 4 items
    cloze = [n for n in per_task if n.startswith("mmlu_cloze_")]
    assert len(cloze) == 57 and all(len(per_task[n]) == 1 for n in cloze)  # stratified over every subject
    assert len(per_task["arc_easy"]) == 40
    again = plan_tasks(EvalRequest(model="smollm2-135m", suite="quick", data_dir=str(real_data_dir)))
    assert per_task == {b.spec.name: ids for b, ids in again}
    other_seed = plan_tasks(EvalRequest(model="smollm2-135m", suite="quick", data_dir=str(real_data_dir), seed=7))
    assert {b.spec.name for b, _ in other_seed if b.spec.group == "mmlu"} != set(mmlu)  # the subjects are seeded
