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
