"""`workbench interp <tool>`: run one interpretability tool, save its artifact, print the artifact id."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from workbench.errors import WorkbenchError

ARTIFACTS_HELP = "artifact root (default: $WORKBENCH_ARTIFACTS, else ./workbench-artifacts)"


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def _floats(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _prompt(args: argparse.Namespace, required: bool = True) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(prompt, gold continuation or None, source link or None) from --prompt or --run/--sample."""
    if args.run or args.sample:
        if args.prompt:
            raise WorkbenchError("give either --prompt or --run/--sample, not both")
        if not (args.run and args.sample):
            raise WorkbenchError("--run and --sample go together (a stored run id and a sample's doc_id)")
        from workbench.interp.sources import from_run

        s = from_run(args.run, args.sample, task=args.task, store=args.store)
        args.sample_predicted = s.predicted_text
        return s.prompt, s.target_text or None, s.link()
    if required and not args.prompt:
        raise WorkbenchError("a prompt is needed: --prompt TEXT or --run RUN_ID --sample DOC_ID")
    return args.prompt, None, None


def _load(args: argparse.Namespace):
    from workbench.interp.hooks import load_hooked

    return load_hooked(args.model)


def _save(result: Any, args: argparse.Namespace) -> int:
    from workbench.interp import artifacts

    aid = artifacts.save(result, args.artifacts)
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
        print(f"saved to {artifacts.artifacts_dir(args.artifacts) / aid}", file=sys.stderr)
    print(aid)
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from workbench.interp.attention import analyze

    prompt, _, source = _prompt(args)
    model = _load(args)
    return _save(analyze(model, prompt, layers=args.layers, seq_lens=args.seq_lens, n_seqs=args.n_seqs,
                         n_seeds=args.n_seeds, seed=args.seed, threshold=args.threshold, source=source), args)


def cmd_patch(args: argparse.Namespace) -> int:
    from workbench.interp.patching import patch

    prompt, gold, source = _prompt(args)
    answer = args.answer if args.answer is not None else gold
    if answer is None:
        raise WorkbenchError("--answer is required (the token the clean prompt should predict)")
    wrong = args.wrong
    predicted = getattr(args, "sample_predicted", None)
    if wrong is None and predicted is not None and predicted != answer:
        wrong = predicted  # a missed item: gold vs what the model chose
    model = _load(args)
    return _save(patch(model, prompt, args.corrupt, answer=answer, wrong=wrong, metric=args.metric,
                       families=args.sites, batch_size=args.batch_size, atp=not args.no_atp, source=source), args)


def cmd_probe(args: argparse.Namespace) -> int:
    from workbench.interp.probe import probe

    model = _load(args)
    return _save(probe(model, args.dataset, pool=args.pool, val_size=args.val_size, test_size=args.test_size,
                       C=args.C, seed=args.seed, batch_size=args.batch_size, data_dir=args.data_dir), args)


def cmd_attribute(args: argparse.Namespace) -> int:
    from workbench.interp.attribute import attribute

    prompt, gold, source = _prompt(args)
    target = args.target if args.target is not None else gold
    if target is None:
        raise WorkbenchError("--target is required (the next token to attribute)")
    model = _load(args)
    return _save(attribute(model, prompt, target, objective=args.objective, n_steps=args.n_steps,
                           max_steps=args.max_steps, tolerance=args.tolerance, internal_batch_size=args.internal_batch_size, baseline_token=args.baseline_token,
                           source=source), args)


def cmd_logit_lens(args: argparse.Namespace) -> int:
    from workbench.interp.logit_lens import lens

    prompt, gold, source = _prompt(args)
    target = args.target if args.target is not None else (gold or None)
    model = _load(args)
    if target is not None and args.target is None:  # a sample's gold text need not be one token
        try:
            model.single_token(target)
        except WorkbenchError:
            target = None
    return _save(lens(model, prompt, k=args.k, positions=args.positions, target=target, source=source), args)


def cmd_drift(args: argparse.Namespace) -> int:
    from workbench.interp import drift
    from workbench.interp.hooks import load_hooked

    if bool(args.variant) == bool(args.other):
        raise WorkbenchError("give exactly one of --variant NAME or --other SPEC")
    prompts: list[str] = list(args.prompt or [])
    source = None
    if args.run or args.sample:
        args.prompt = None
        p, _, source = _prompt(args)
        prompts.append(p)
    ref = _load(args)
    other = drift.variant_of(ref, args.variant) if args.variant else load_hooked(args.other)
    return _save(drift.compare(ref, other, prompts or drift.DEFAULT_PROMPTS, source=source), args)


def _common(p: argparse.ArgumentParser, prompt: bool = True) -> None:
    p.add_argument("--model", required=True, help="model spec with torch weights: an alias (smollm2-135m, "
                                                  "gemma3-270m), gguf:FILE or hf:DIR")
    if prompt:
        p.add_argument("--prompt", help="the prompt text")
        p.add_argument("--run", help="take the prompt from this stored eval run ...")
        p.add_argument("--sample", help="... and this sample's doc_id")
        p.add_argument("--task", help="the sample's task, when several tasks of the run share the doc_id")
        p.add_argument("--store", help="run store (default: $WORKBENCH_STORE, else ./workbench-runs)")
    p.add_argument("--artifacts", help=ARTIFACTS_HELP)
    p.add_argument("--quiet", action="store_true", help="print only the artifact id")


def register(subparsers: Any) -> None:
    ip = subparsers.add_parser("interp", help="interpretability tools; each saves an artifact",
                               description="Run an interpretability tool on a model and save its result as an "
                                           "artifact (see `workbench artifacts`). Prints the artifact id.")
    sub = ip.add_subparsers(dest="interp_command", metavar="TOOL", required=True)

    def tool(name: str, fn: Callable[[argparse.Namespace], int], help_: str, prompt: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p, prompt)
        p.set_defaults(func=fn)
        return p

    a = tool("attention", cmd_attention, "attention patterns per layer/head on the prompt, and head scores "
             "(previous-token, induction, duplicate-token) on repeated random tokens")
    a.add_argument("--layers", type=_ints, help="layers whose prompt patterns to keep (default: all)")
    a.add_argument("--seq-lens", "--seq-len", type=_ints, default=[30, 40, 50, 60],
                   help="random tokens per half of a head-score sequence, one setting per length "
                        "(default 30,40,50,60)")
    a.add_argument("--n-seeds", type=int, default=2, help="seeds per length (default 2); scores are averaged over "
                                                           "lengths x seeds and their spread stored")
    a.add_argument("--n-seqs", type=int, default=8, help="random sequences per setting (default 8)")
    a.add_argument("--seed", type=int, default=0, help="base seed the per-setting seeds derive from")
    a.add_argument("--threshold", type=float, default=0.5, help="an induction head scores above this at every "
                                                                "setting (default 0.5)")

    p = tool("patch", cmd_patch, "activation patching clean -> corrupted (residual by layer x position, attention "
             "and MLP outputs by layer, heads), plus attribution patching and its correlation with exact")
    p.add_argument("--corrupt", required=True, help="corrupted prompt (same token length as the clean one)")
    p.add_argument("--answer", help="answer token (default: the sample's target text)")
    p.add_argument("--wrong", help="wrong-answer token for the logit_diff metric")
    p.add_argument("--metric", default="logit_diff", choices=["logit_diff", "prob", "logprob"])
    p.add_argument("--sites", type=_csv, default=["resid_pre", "attn_out", "mlp_out", "head"],
                   help="site families (default: resid_pre,attn_out,mlp_out,head)")
    p.add_argument("--batch-size", type=int, default=32, help="patched cells per forward (default 32)")
    p.add_argument("--no-atp", action="store_true", help="skip attribution patching")

    pr = tool("probe", cmd_probe, "linear probes per layer on a labelled dataset declared in probes/*.yaml: "
              "layer and C picked on a validation split, test accuracy with 95%% CI, a random-label control "
              "(selectivity) and a text-only bag-of-words baseline on the same splits", prompt=False)
    pr.add_argument("--dataset", required=True, help="probe dataset name (probes/<name>.yaml)")
    pr.add_argument("--pool", default="last", choices=["last", "mean"], help="token pooling (default last)")
    pr.add_argument("--val-size", type=float, default=0.2, help="fraction of groups for validation (default 0.2)")
    pr.add_argument("--test-size", type=float, default=0.3, help="fraction of groups for test (default 0.3)")
    pr.add_argument("--C", type=_floats, default=[0.001, 0.01, 0.1, 1.0],
                    help="inverse L2 strengths of the logistic probe, picked per layer on validation "
                         "(default 0.001,0.01,0.1,1)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--batch-size", type=int, default=16)
    pr.add_argument("--data-dir", help="benchmark mirror (default: $WORKBENCH_DATA_DIR, else ../shared/benchmark-data)")

    t = tool("attribute", cmd_attribute, "Integrated Gradients (Captum, embeddings, position 0 fixed in the "
             "baseline) and gradient x input for one target next token")
    t.add_argument("--target", help="target token text (default: the sample's target text)")
    t.add_argument("--objective", default="logprob", choices=["logprob", "logit"])
    t.add_argument("--n-steps", type=int, default=64, help="IG path steps to start with (default 64); doubled "
                   "until the completeness error is within --tolerance")
    t.add_argument("--max-steps", type=int, default=1024, help="most IG steps to try before failing (default 1024)")
    t.add_argument("--tolerance", type=float, default=0.01, help="largest accepted completeness error "
                   "|sum(IG) - (f(x) - f(baseline))| / |f(x) - f(baseline)| (default 0.01)")
    t.add_argument("--internal-batch-size", type=int, default=16, help="IG path points per forward (bounds memory)")
    t.add_argument("--baseline-token", help="token replacing positions 1.. in the baseline (default pad/eos)")

    lp = tool("logit-lens", cmd_logit_lens, "per-layer top-k next tokens, the final norm and unembedding applied "
              "to each layer's residual stream")
    lp.add_argument("-k", type=int, default=10)
    lp.add_argument("--positions", type=_ints, help="positions (default: last; negative counts from the end)")
    lp.add_argument("--target", help="also track this token's probability and rank")

    d = sub.add_parser("drift", help="per-layer residual drift between a model and a variant",
                       description="Per-layer cosine similarity and relative error of residual streams between "
                                   "a model and a variant (a named transform or another spec) on the same prompts.")
    d.add_argument("--model", required=True, help="reference model spec")
    d.add_argument("--variant", help="named variant of the reference: int8-dynamic, int8-dynamic-per-channel, "
                                     "bf16-weights")
    d.add_argument("--other", help="another model spec with the same tokenizer")
    d.add_argument("--prompt", action="append", help="a prompt (repeatable; default: a small built-in set)")
    d.add_argument("--run", help="also use this run's sample ...")
    d.add_argument("--sample", help="... with this doc_id")
    d.add_argument("--task")
    d.add_argument("--store")
    d.add_argument("--artifacts", help=ARTIFACTS_HELP)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_drift)
