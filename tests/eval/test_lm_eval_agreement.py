"""Our harness vs lm-eval's own simple_evaluate with its stock `hf` backend: same model, same items."""
import numpy as np
import pytest

pytestmark = pytest.mark.slow

TASKS = {"mmlu_anatomy": 8, "mmlu_cloze_anatomy": 4, "arc_challenge": 4, "truthfulqa_mc2": 4}


def test_per_sample_agreement_with_lm_eval_hf(smollm2_checkpoint, real_data_dir, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from workbench.eval import tasks as T
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    ours = {}
    for task, n in TASKS.items():
        run = run_eval(EvalRequest(model="smollm2-135m", tasks=[task], limit=n, data_dir=str(real_data_dir)),
                       store=RunStore(tmp_path), progress=False)
        ours[task] = run.samples.set_index("doc_id")

    stock = HFLM(pretrained=str(smollm2_checkpoint), dtype="float32", batch_size=1, device="cpu")
    max_diff, n_items = 0.0, 0
    for task, n in TASKS.items():
        built = T.build(T.resolve([task])[0], real_data_dir)
        ref = lm_eval.simple_evaluate(model=stock, tasks=[built.task], limit=n, log_samples=True, bootstrap_iters=0)
        for s in ref["samples"][task]:
            row = ours[task].loc[s["doc_id"]]
            ref_ll = np.array([float(r[0][0]) for r in s["resps"]])
            assert row.prompt == s["arguments"][0][0]
            assert int(row.prediction) == int(np.argmax(ref_ll)), (task, s["doc_id"])
            np.testing.assert_allclose(row.loglikelihoods, ref_ll, atol=2e-4)
            for metric in ("acc", "acc_norm"):
                if metric in s:
                    assert row[metric] == pytest.approx(s[metric], abs=1e-4)
            max_diff = max(max_diff, float(np.max(np.abs(row.loglikelihoods - ref_ll))))
            n_items += 1
        assert ref["results"][task]["acc,none"] == pytest.approx(ours[task]["acc"].mean(), abs=1e-4)
    assert n_items == sum(TASKS.values())
    print(f"\n{n_items} items agree; max |delta loglikelihood| = {max_diff:.2e}")


PERPLEXITY = {"perplexity_code": 8, "perplexity_math": 8}


def test_perplexity_agrees_with_lm_eval_hf(smollm2_checkpoint, real_data_dir, tmp_path):
    """Per-document rolling log-likelihoods and the weighted aggregates equal lm-eval's stock `hf`."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from workbench.eval import tasks as T
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    n = PERPLEXITY["perplexity_code"]
    run = run_eval(EvalRequest(model="smollm2-135m", tasks=list(PERPLEXITY), limit=n, data_dir=str(real_data_dir)),
                   store=RunStore(tmp_path), progress=False)
    stock = HFLM(pretrained=str(smollm2_checkpoint), dtype="float32", batch_size=4, device="cpu")
    worst, worst_agg = 0.0, 0.0
    for task in PERPLEXITY:
        ours = run.samples[run.samples.task == task].set_index("doc_id")
        built = T.build(T.resolve([task])[0], real_data_dir)
        ref = lm_eval.simple_evaluate(model=stock, tasks=[built.task], limit=n, log_samples=True, bootstrap_iters=0)
        assert len(ref["samples"][task]) == n
        for s in ref["samples"][task]:
            ll_ref = float(s["resps"][0][0])
            ll = ours.loc[s["doc_id"], "loglikelihoods"][0]
            assert ll == pytest.approx(ll_ref, rel=1e-5), (task, s["doc_id"])
            worst = max(worst, abs(ll - ll_ref) / abs(ll_ref))
        for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            got = run.metrics["tasks"][task][metric]["value"]
            want = ref["results"][task][f"{metric},none"]
            # float32 sums of a few hundred log-probs in different batch shapes: ~1e-5 relative per document,
            # which exp(-ll/words) multiplies by ll/words
            assert got == pytest.approx(want, rel=1e-4), (task, metric)
            worst_agg = max(worst_agg, abs(got - want) / want)
    print(f"\nperplexity: max relative difference: loglikelihood {worst:.1e}, aggregates {worst_agg:.1e}")


def test_truthfulqa_gen_agrees_with_lm_eval_hf(smollm2_checkpoint, real_data_dir, tmp_path):
    """Same greedy answers as lm-eval's stock `hf`, and the same BLEU/ROUGE per sample."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from workbench.eval import tasks as T
    from workbench.eval.harness import EvalRequest, run_eval
    from workbench.store import RunStore

    n = 3
    run = run_eval(EvalRequest(model="smollm2-135m", tasks=["truthfulqa_gen"], limit=n, data_dir=str(real_data_dir)),
                   store=RunStore(tmp_path), progress=False)
    ours = run.samples.set_index("doc_id")
    stock = HFLM(pretrained=str(smollm2_checkpoint), dtype="float32", batch_size=n, device="cpu")
    built = T.build(T.resolve(["truthfulqa_gen"])[0], real_data_dir)
    ref = lm_eval.simple_evaluate(model=stock, tasks=[built.task], limit=n, log_samples=True, bootstrap_iters=0)
    assert len(ref["samples"]["truthfulqa_gen"]) == n
    for s in ref["samples"]["truthfulqa_gen"]:
        row = ours.loc[s["doc_id"]]
        assert row.prompt == s["arguments"][0][0]
        assert row.generation == s["resps"][0][0]
        for metric in ("bleu_max", "bleu_acc", "bleu_diff", "rouge1_acc", "rouge2_max", "rougeL_diff"):
            assert row[metric] == pytest.approx(s[metric], abs=1e-9), metric
