"""Generative tasks: GSM8K (extraction agrees with lm-eval's own filters), HumanEval (sandboxed
pass@k with per-sample failure reasons), the chat-template variant, and generation timings."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from workbench.eval import tasks as T
from workbench.eval.harness import EvalRequest, _chat_kwargs, run_eval, uses_chat_template
from workbench.sandbox import runner as S
from workbench.scoring.codeeval import pass_at_k
from workbench.store import RunStore

BENCH_TASKS = Path(__file__).resolve().parents[2] / "benchmarks" / "tasks"


def _builtin_config(rel: str) -> dict:
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(Path(lm_eval.tasks.__file__).parent / rel, resolve_func=False)


def lm_eval_filtered(generations: list[str], docs: list[dict], filter_list: list[dict]) -> dict[str, list]:
    """lm-eval's own filter ensembles (built as ConfigurableTask builds them) applied to generations."""
    from lm_eval.api.instance import Instance
    from lm_eval.filters import build_filter_ensemble

    out = {}
    for fcfg in filter_list:
        comps = [[f["function"], {k: v for k, v in f.items() if k != "function"}] for f in fcfg["filter"]]
        ensemble = build_filter_ensemble(fcfg["name"], comps)
        insts = [Instance("generate_until", d, ("", {}), 0, ("gsm8k", i, 1)) for i, d in enumerate(docs)]
        for inst, g in zip(insts, generations):
            inst.resps = [g]
        ensemble.apply(insts)
        out[fcfg["name"]] = [inst.filtered_resps[fcfg["name"]] for inst in insts]
    return out


def assert_gsm8k_agrees_with_lm_eval(df) -> int:
    """Stored predictions and exact_match equal lm-eval's filters + metric on the stored generations."""
    from lm_eval.api.registry import get_metric

    cfg = _builtin_config("gsm8k/gsm8k.yaml")
    em_cfg = {k: v for k, v in cfg["metric_list"][0].items() if k not in ("metric", "aggregation", "higher_is_better")}
    exact_match = get_metric("exact_match")
    part = df[df.task == "gsm8k"]
    docs = [json.loads(d) for d in part.doc]
    ref = lm_eval_filtered(list(part.generation), docs, cfg["filter_list"])
    assert set(ref) == {"strict-match", "flexible-extract"}
    for name, preds in ref.items():
        assert list(part[f"prediction,{name}"]) == [str(p) for p in preds]
        em = [exact_match(predictions=[p], references=[d["answer"]], **em_cfg)["exact_match"] for p, d in zip(preds, docs)]
        assert list(part[f"exact_match,{name}"]) == pytest.approx(em)
    return len(part)


# ---- end to end on the tiny model ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gen_run(tiny_model_dir, fixture_mirror, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    req = EvalRequest(model=f"hf:{tiny_model_dir}", tasks=["gsm8k", "humaneval"], data_dir=str(fixture_mirror),
                      chunk_size=2)
    return run_eval(req, store=store, progress=False)


def test_gsm8k_extraction_agrees_with_lm_eval_filters(tiny_gen_run):
    assert assert_gsm8k_agrees_with_lm_eval(tiny_gen_run.samples) == 3
    m = tiny_gen_run.manifest["tasks"]["gsm8k"]
    assert m["num_fewshot"] == 5 and m["output_type"] == "generate_until" and m["chat_template"] is False


def test_humaneval_rows_record_pass_and_failure_reason(tiny_gen_run):
    part = tiny_gen_run.samples.query("task == 'humaneval'")
    assert len(part) == 3
    for _, row in part.iterrows():
        reasons = list(row["exec_reasons,create_test"])
        assert len(reasons) == 1 and reasons[0] == row["exec_reason,create_test"] and reasons[0] in S.REASONS
        assert row["pass@1,create_test"] == float(reasons[0] == "passed")
        assert row["prediction,create_test"] == json.loads(row.doc)["prompt"] + row.generation
    assert "pass@1,create_test" in tiny_gen_run.metrics["tasks"]["humaneval"]
    assert "exec_reason,create_test" not in tiny_gen_run.metrics["tasks"]["humaneval"]  # strings are not metrics


def test_manifest_records_generation_throughput(tiny_gen_run):
    gen = tiny_gen_run.manifest["timings"]["generation"]
    assert set(gen) == {"gsm8k", "humaneval"}
    assert gen["gsm8k"]["generations"] == 3 and gen["gsm8k"]["tokens"] > 0
    assert gen["gsm8k"]["tokens_per_s"] == pytest.approx(gen["gsm8k"]["tokens"] / gen["gsm8k"]["seconds"], rel=0.01)


# ---- HumanEval metric ---------------------------------------------------------------------------
def _utils():
    spec = importlib.util.spec_from_file_location("humaneval_utils", BENCH_TASKS / "humaneval_utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ADD = {"prompt": "def add(a, b):\n", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
       "entry_point": "add"}


def test_process_results_scores_through_the_sandbox(monkeypatch):
    monkeypatch.setenv("WORKBENCH_SANDBOX_TIMEOUT", "2")
    u = _utils()
    good, wrong, loop, prose = (ADD["prompt"] + c for c in
                                ("    return a + b\n", "    return a - b\n", "    while True:\n        pass\n",
                                 "This function adds numbers.\n"))
    assert u.process_results(ADD, [[good]]) == {"pass@1": 1.0, "exec_reason": "passed", "exec_reasons": ["passed"],
                                                "exec_details": [""], "exec_layers": ",".join(S.layers())}
    r = u.process_results(ADD, [[wrong, loop, prose, good, good]])
    assert r["exec_reasons"] == ["assertion", "timeout", "syntax", "passed", "passed"]
    assert r["pass@1"] == pytest.approx(0.4) and r["pass@5"] == 1.0
    assert r["pass@1"] == pytest.approx(pass_at_k(5, 2, 1))


def test_humaneval_config_keeps_lm_eval_prompt_stops_and_filter(monkeypatch):
    import yaml

    ours = yaml.safe_load((BENCH_TASKS / "humaneval.yaml").read_text().replace("!function ", ""))
    builtin = _builtin_config("humaneval/humaneval.yaml")
    for key in ("doc_to_text", "doc_to_target", "generation_kwargs", "repeats", "num_fewshot", "output_type",
                "test_split", "unsafe_code"):
        assert ours[key] == builtin[key], key
    assert [f["name"] for f in ours["filter_list"]] == [f["name"] for f in builtin["filter_list"]]
    sampled = _builtin_config("humaneval/humaneval_64.yaml")
    ours_s = yaml.safe_load((BENCH_TASKS / "humaneval_sampled.yaml").read_text().replace("!function ", ""))
    assert ours_s["generation_kwargs"] == sampled["generation_kwargs"]
    # lm-eval's build_predictions (its module loads a hub metric at import: stub only that loader)
    import evaluate

    class _Stub:
        def compute(self, **_):
            return ({"pass@1": 0.0}, {})

    monkeypatch.setattr(evaluate, "load", lambda *a, **k: _Stub())
    import lm_eval.tasks

    spec = importlib.util.spec_from_file_location("lm_eval_humaneval_utils",
                                                  Path(lm_eval.tasks.__file__).parent / "humaneval" / "utils.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    resps, docs = [["    return 1\n", "x"], [""]], [{"prompt": "def f():\n"}, {"prompt": "def g():\n"}]
    assert _utils().build_predictions(resps, docs) == ref.build_predictions(resps, docs)


def test_schemas_reject_malformed_rows():
    from workbench.eval.schemas import SCHEMAS

    with pytest.raises(ValueError, match="####"):
        SCHEMAS["gsm8k_jsonl"]({"question": "q", "answer": "no marker"}, None)
    with pytest.raises(ValueError, match="check"):
        SCHEMAS["humaneval_jsonl"]({"task_id": "x", "prompt": "p", "test": "assert 1", "entry_point": "f"}, None)


def test_chat_variant_falls_back_to_plain_prompts_without_a_chat_template(tiny_model_dir):
    from workbench.eval.models import load_model

    built = T.build(T.resolve(["gsm8k_cot_llama"])[0])
    assert built.spec.chat_template and built.num_fewshot == 8

    class NoChat:  # e.g. the llama.cpp backend: no apply_chat_template at all
        pass

    assert _chat_kwargs(built, NoChat()) == {}
    tiny = load_model(f"hf:{tiny_model_dir}")  # an HFLM whose tokenizer has no template
    assert not uses_chat_template(built, tiny) and _chat_kwargs(built, tiny) == {}


# ---- real model ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chat_variant_renders_the_models_template_with_fewshot_turns(smollm2_checkpoint):
    from workbench.eval.models import load_model

    lm = load_model(f"hf:{smollm2_checkpoint}")
    built = T.build(T.resolve(["gsm8k_cot_llama"])[0])
    assert uses_chat_template(built, lm)
    built.task.build_all_requests(samples=[0], rank=0, world_size=1, **_chat_kwargs(built, lm))
    prompt = built.task.instances[0].arguments[0]
    assert prompt.count("<|im_start|>user") == 9 and prompt.count("<|im_start|>assistant") == 9  # 8 shots + question
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "The final answer is 6" in prompt


@pytest.mark.slow
def test_smollm2_gsm8k_generations_agree_with_lm_eval_filters(smollm2_checkpoint, real_data_dir, tmp_path):
    req = EvalRequest(model=f"hf:{smollm2_checkpoint}", tasks=["gsm8k"], limit=2)
    run = run_eval(req, store=RunStore(tmp_path), progress=False)
    df = run.samples
    assert all(g.strip() for g in df.generation)
    assert assert_gsm8k_agrees_with_lm_eval(df) == 2
    assert run.manifest["timings"]["generation"]["gsm8k"]["tokens"] > 0
