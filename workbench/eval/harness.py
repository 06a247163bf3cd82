"""The evaluation loop: lm-eval tasks x one backend -> per-sample rows journalled into the store.

It follows lm-eval's `evaluator.evaluate` step for step (build requests, run them by type, apply
the task's filters, `process_results` per doc), but over fixed chunks of docs, each journalled as
it finishes. A killed run resumes from its journal; chunk boundaries and prompts are fixed by the
plan in the manifest, so the resumed run's per-sample results equal an uninterrupted run's.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from workbench import settings
from workbench.argtypes import DEVICE_PATTERN, SEED_MAX
from workbench.errors import StoreError, TaskError, WorkbenchError
from workbench.scoring import aggregates
from workbench.scoring.aggregates import calibration
from workbench.store import PartialRun, Run, RunStore
from workbench.store.provenance import git_commit, hardware, package_versions, utc_now
from workbench.store.publish import to_jsonable
from workbench.store.runs import MANIFEST
from workbench.store.samples import base_metric, directions_from_lm_eval, metric_columns, ratio_parts

_PACKAGES = ("torch", "transformers", "lm_eval", "datasets", "gguf", "llama_cpp", "transformer_lens", "captum",
             "numpy", "pandas", "pyarrow")


@dataclass
class EvalRequest:
    """What `workbench eval` was asked to do; stored in the manifest so --resume can repeat it."""

    model: str
    tasks: list[str] = field(default_factory=list)
    suite: str | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    data_dir: str | None = None
    seed: int = 1234
    chunk_size: int = 16
    # Docs handed to the model in one call (chunks pooled across tasks; see `plan_units`). A request
    # recorded before this existed ran chunk by chunk: 1 resumes it so.
    pool_docs: int = 64
    batch_size: int = settings.BATCH_SIZE
    dtype: str = "float32"
    device: str | None = None  # torch device of the hf/gguf backends (None: $WORKBENCH_DEVICE, else cpu)
    # Scoring settings (None: the environment's, else the default); resolved into the manifest's `scoring`.
    refusal_judge: str | None = None
    judge_model: str | None = None
    sandbox_timeout_s: float | None = None
    sandbox_memory_mb: int | None = None

    def __post_init__(self) -> None:
        for name, low, high in (("limit", 1, None), ("num_fewshot", 0, None), ("chunk_size", 1, None),
                                ("pool_docs", 1, None), ("batch_size", 1, None), ("seed", 0, SEED_MAX)):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low
                                      or (high is not None and value > high)):
                flag = "--" + name.replace("_", "-")
                bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise WorkbenchError(f"{flag} must be an integer {bounds}, got {value!r}")
        if not isinstance(self.model, str) or not self.model:
            raise WorkbenchError(f"--model must be a model spec, got {self.model!r}")
        if not isinstance(self.tasks, list) or not all(isinstance(t, str) for t in self.tasks):
            raise WorkbenchError(f"--tasks must be a list of task names, got {self.tasks!r}")
        for name in ("suite", "data_dir"):
            if not isinstance(getattr(self, name), str | None):
                raise WorkbenchError(f"--{name.replace('_', '-')} must be a string, got {getattr(self, name)!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise WorkbenchError(f"--dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.device is not None and not (isinstance(self.device, str)
                                            and re.fullmatch(DEVICE_PATTERN, self.device)):
            raise WorkbenchError(f"--device must be cpu, cuda, cuda:N, mps or auto, got {self.device!r}")

    def scoring(self) -> settings.Scoring:
        """The scoring settings this request runs under (options over environment over defaults)."""
        try:
            return settings.Scoring.from_env(refusal_judge=self.refusal_judge, judge_model=self.judge_model,
                                             sandbox_timeout_s=self.sandbox_timeout_s,
                                             sandbox_memory_mb=self.sandbox_memory_mb)
        except ValueError as exc:
            raise WorkbenchError(str(exc)) from None


def _quiet_lm_eval() -> None:
    for name in ("lm_eval", "lm-eval", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


@contextlib.contextmanager
def _tqdm_off():
    """Silence lm-eval's own per-task progress bar while it builds prompts (ours covers the run)."""
    import functools

    import lm_eval.api.task as task_mod

    original = task_mod.tqdm
    task_mod.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        task_mod.tqdm = original


def new_run_id(model: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in model.split("/")[-1])[:40].strip("-") or "model"
    return f"{_dt.datetime.now(_dt.UTC):%Y%m%d-%H%M%S}-{slug}-{secrets.token_hex(2)}"


# ---- planning -----------------------------------------------------------------------------------
def plan_tasks(req: EvalRequest) -> list[tuple[Any, list[int]]]:
    """[(BuiltTask, doc indices)] for a request: suite sampling or --limit, lm-eval few-shot rules."""
    from workbench.eval import tasks as T

    if req.suite and req.tasks:
        raise TaskError("give either --tasks or --suite, not both")
    if not req.suite and not req.tasks:
        raise TaskError("nothing to evaluate: give --tasks T1,T2 or --suite NAME")
    entries = T.suite_tasks(req.suite) if req.suite else {t: {} for t in req.tasks}
    planned = []
    for entry, opts in entries.items():
        specs = T.resolve([entry])
        if opts.get("subsets") is not None and opts["subsets"] < len(specs):  # a seeded sample of a group's subtasks
            picked = set(random.Random(f"{req.seed}:{entry}:subsets").sample(range(len(specs)), opts["subsets"]))
            specs = [spec for k, spec in enumerate(specs) if k in picked]
        per_subset = opts.get("per_subset")
        for spec in specs:
            built = build_task(req, spec.name)
            n_docs = len(built.task.eval_docs)
            n = per_subset if per_subset is not None else opts.get("n")
            planned.append((built, T.select_docs(spec.name, n_docs, limit=req.limit, n=n, seed=req.seed)))
    return planned


def ratio_aggregations(task) -> dict[str, str]:
    """The task's metrics that lm-eval aggregates as a ratio of sums (perplexities, bits per byte), by
    aggregation name; every other metric is a mean of its per-item values."""
    from workbench.analysis.stats import RATIO_AGGREGATIONS

    names = {m: getattr(fn, "__name__", "") for m, fn in (task.aggregation() or {}).items()}
    return {m: a for m, a in names.items() if a in RATIO_AGGREGATIONS}


def build_task(req: EvalRequest, name: str):
    """One planned task, built as every process of the run builds it (same data, few-shot seed)."""
    from workbench.eval import tasks as T

    return T.build(T.resolve([name])[0], req.data_dir, req.num_fewshot, fewshot_seed=req.seed)


def _task_manifest(built, doc_ids: list[int], chunk_size: int, chat_template: bool,
                   scoring: settings.Scoring) -> dict[str, Any]:
    config = built.task.config
    return {
        "benchmark": built.spec.benchmark,
        "subset": built.spec.subset,
        "group": built.spec.group,
        "version": built.version,
        "prompt_hash": built.prompt_hash,
        "num_fewshot": built.num_fewshot,
        "output_type": built.task.OUTPUT_TYPE,
        "chat_template": chat_template,
        "n_docs_total": len(built.task.eval_docs),
        "doc_ids": doc_ids,
        "n_chunks": (len(doc_ids) + chunk_size - 1) // chunk_size,
        "data": [asdict(f) for f in built.files],
        "generation_kwargs": to_jsonable(getattr(config, "generation_kwargs", None) or {}),
        "directions": directions_from_lm_eval(built.task.higher_is_better() or {}),
        "aggregations": ratio_aggregations(built.task),
        "primary_metric": built.spec.primary_metric,
        "scoring": {k: scoring.to_dict()[k] for k in built.spec.scoring},
    }


def has_chat_template(lm) -> bool:
    """The loaded model can render prompts with a chat template of its own."""
    return callable(getattr(lm, "apply_chat_template", None)) and bool(
        getattr(getattr(lm, "tokenizer", None), "chat_template", None))


def uses_chat_template(built, lm) -> bool:
    """A task declared `chat_template: true` is rendered with the model's chat template if it has
    one (lm-eval's --apply_chat_template --fewshot_as_multiturn); a model without one (a base model,
    the llama.cpp backend) gets the plain prompt. The manifest records which applied."""
    return bool(built.spec.chat_template) and has_chat_template(lm)


def _chat_kwargs(built, lm) -> dict[str, Any]:
    if not uses_chat_template(built, lm):
        return {}
    return {"apply_chat_template": True, "fewshot_as_multiturn": True, "chat_template": lm.apply_chat_template}


# ---- per-chunk evaluation -------------------------------------------------------------------------
def prompt_hash(prompt: str) -> str:
    """The item key's prompt hash: sha256 of the prompt exactly as the model saw it."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def prompt_text(inst) -> str:
    """A request's prompt as stored (a chat-templated prompt that is not a string: its JSON)."""
    prompt = inst.arguments[0]
    return prompt if isinstance(prompt, str) else json.dumps(to_jsonable(prompt))


def build_requests(built, doc_ids: list[int], lm=None) -> dict[int, list]:
    """lm-eval's requests for the docs, by position in `doc_ids` (chat-templated when the task and `lm` say so).

    All of a task's prompts are built up front, as lm-eval does, so few-shot draws do not depend on
    chunking or on where a run was interrupted.
    """
    with _tqdm_off():
        built.task.build_all_requests(samples=doc_ids, rank=0, world_size=1,
                                      **(_chat_kwargs(built, lm) if lm is not None else {}))
    by_pos: dict[int, list] = {}
    for inst in built.task.instances:
        by_pos.setdefault(inst.doc_id, []).append(inst)
    return by_pos


def _token_counter(lm) -> Callable[[str], int] | None:
    """The backend's own tokeniser (HFLM's tok_encode, llama.cpp's), to count generated tokens."""
    encode = getattr(lm, "tok_encode", None) or getattr(lm, "_enc", None)
    return (lambda text: len(encode(text))) if encode else None


def respond(lm, insts: list) -> float | None:
    """Fill every instance's `resps` from the model, one call per request type (instances of several
    tasks may go together); returns the generate_until call's seconds (None: there was none)."""
    by_type: dict[str, list] = {}
    for inst in insts:
        inst.resps = []
        by_type.setdefault(inst.request_type, []).append(inst)
    seconds = None
    for reqtype, reqs in by_type.items():
        cloned = [r for r in reqs for _ in range(r.repeats)]
        t_call = time.perf_counter()
        resps = getattr(lm, reqtype)(cloned, disable_tqdm=True)
        if reqtype == "generate_until":
            seconds = time.perf_counter() - t_call
        for resp, r in zip(resps, cloned, strict=True):
            r.resps.append(resp)
    return seconds


def generation_counts(lm, insts: list) -> dict[str, int]:
    """Generations among the answered instances and, by the backend's own tokeniser, their tokens."""
    gens = [resp for inst in insts if inst.request_type == "generate_until" for resp in inst.resps]
    count = _token_counter(lm)
    return {"generations": len(gens), **({"tokens": sum(count(str(r)) for r in gens)} if count else {})}


def chunk_rows(task, instances_by_pos: dict[int, list], positions: list[int], doc_ids: list[int]) -> list[dict]:
    """The chunk's rows from its answered instances: the task's filters, then `process_results` per doc."""
    insts = [inst for p in positions for inst in instances_by_pos[p]]
    for ensemble in getattr(task, "_filters", []):
        ensemble.apply(insts)

    aggregations = task.aggregation() or {}
    ratios = ratio_aggregations(task)
    rows = []
    for p in positions:
        reqs = sorted(instances_by_pos[p], key=lambda x: x.idx)
        doc = reqs[0].doc
        prompt = prompt_text(reqs[0])
        target = task.doc_to_target(doc)
        row: dict[str, Any] = {
            "doc_id": doc_ids[p],
            "prompt": prompt,
            "target": str(to_jsonable(target)),
            "prompt_hash": prompt_hash(prompt),
            "doc": json.dumps(to_jsonable(doc), ensure_ascii=False, default=str),
        }
        if task.OUTPUT_TYPE in ("multiple_choice", "loglikelihood"):
            lls = [float(r.resps[0][0]) for r in reqs]
            row["choices"] = [r.arguments[1] for r in reqs]
            row["loglikelihoods"] = lls
            row["is_greedy"] = [bool(r.resps[0][1]) for r in reqs]
            row["prediction"] = str(max(range(len(lls)), key=lls.__getitem__))
            if isinstance(target, int) and 0 <= target < len(reqs):
                row["target_text"] = reqs[target].arguments[1]
        elif task.OUTPUT_TYPE == "loglikelihood_rolling":
            row["loglikelihoods"] = [float(reqs[0].resps[0])]
        else:
            row["generation"] = str(reqs[0].resps[0]) if reqs[0].resps else ""
        for fkey in reqs[0].filtered_resps:
            metrics = task.process_results(doc, [r.filtered_resps[fkey] for r in reqs])
            suffix = "" if fkey == "none" else f",{fkey}"
            for name, value in metrics.items():
                if name in ratios and isinstance(value, tuple | list) and len(value) == 2:
                    # lm-eval's (numerator, denominator) item: its own value, and the parts for the scope's ratio
                    num, den = ratio_parts(f"{name}{suffix}")
                    row[f"{name}{suffix}"] = float(aggregations[name]([tuple(value)]))
                    row[num], row[den] = float(value[0]), float(value[1])
                else:
                    row[f"{name}{suffix}"] = to_jsonable(value)
            if task.OUTPUT_TYPE == "generate_until":
                pred = reqs[0].filtered_resps[fkey]
                row[f"prediction{suffix}"] = str(pred[0] if isinstance(pred, list) and pred else pred)
        if task.OUTPUT_TYPE == "multiple_choice":
            row.update(calibration.sample_fields(row["loglikelihoods"], row["choices"], target, row.get("acc")))
        rows.append(row)
    return rows


# ---- metrics ------------------------------------------------------------------------------------
def _estimate(part, metric: str, aggregation: str | None, seed: int) -> dict[str, float]:
    """A metric's value over items: the mean, or the declared ratio of sums (perplexities); stderr, 95% CI."""
    from workbench.analysis.stats import mean_estimate, ratio_estimate

    num, den = ratio_parts(metric)
    if aggregation and num in part.columns and den in part.columns:
        return ratio_estimate(part[num], part[den], aggregation, seed=seed).to_dict()
    return mean_estimate(part[metric], seed=seed).to_dict()


def metric_estimates(part, aggregations: dict[str, str], seed: int) -> dict[str, Any]:
    """Each per-sample metric (a mean, or lm-eval's weighted ratio where the task declares one), then each
    aggregate metric (a statistic of the items, e.g. ECE) with its bootstrap CI over items."""
    out = {m: _estimate(part, m, aggregations.get(base_metric(m)), seed)
           for m in metric_columns(part) if part[m].notna().any()}
    out.update({name: aggregates.estimate(name, part, seed=seed).to_dict() for name in aggregates.available(part)})
    return out


def compute_metrics(df, manifest: dict[str, Any], seed: int) -> dict[str, Any]:
    """Per task and per group: each metric's value, stderr and 95% bootstrap CI."""
    tasks = manifest["tasks"]
    out: dict[str, Any] = {"tasks": {}, "groups": {}}
    for name, part in df.groupby("task", sort=False):
        out["tasks"][name] = metric_estimates(part, (tasks.get(name) or {}).get("aggregations") or {}, seed)
    for group in sorted({t.get("group") for t in tasks.values() if t.get("group")}):
        aggs = {k: v for t in tasks.values() if t.get("group") == group for k, v in (t.get("aggregations") or {}).items()}
        # Pooled over items (lm-eval's weight_by_size for the MMLU group).
        out["groups"][group] = metric_estimates(df[df["group"] == group], aggs, seed)
    return out


def _resume_plan(partial: PartialRun) -> tuple[EvalRequest, settings.Scoring]:
    """An interrupted run's request and scoring settings; StoreError naming its manifest if it is not in the
    shape a run writes (damaged or edited), before any work."""
    m = partial.manifest
    damaged = f"cannot resume {partial.run_id}: {partial.path / MANIFEST} is damaged"
    request = m["request"]
    unknown = sorted(str(k) for k in request if k not in {f.name for f in fields(EvalRequest)})
    if unknown:
        raise StoreError(f"{damaged}: its request has unknown field(s) {', '.join(unknown)}")
    if "model" not in request:
        raise StoreError(f"{damaged}: its request names no model")
    try:
        req = EvalRequest(**{"pool_docs": 1, **request})
        scoring = settings.Scoring.from_dict(m.get("scoring") or {})
    except (ValueError, WorkbenchError) as exc:
        raise StoreError(f"{damaged}: {exc}") from None
    if not isinstance(m.get("model"), dict) or not isinstance(m["model"].get("sha256"), str):
        raise StoreError(f"{damaged}: no model sha256")
    for name, rec in m["tasks"].items():
        if not (isinstance(rec, dict) and isinstance(rec.get("doc_ids"), list) and isinstance(rec.get("n_chunks"), int)
                and all(isinstance(i, int) and not isinstance(i, bool) for i in rec["doc_ids"])
                and rec["n_chunks"] == -(-len(rec["doc_ids"]) // req.chunk_size)
                and isinstance(rec.get("data"), list) and isinstance(rec.get("prompt_hash"), str)):
            raise StoreError(f"{damaged}: task {name!r} has no valid plan (doc_ids, n_chunks, data, prompt_hash)")
    return req, scoring


def _check_journal(partial: PartialRun, done: dict[tuple[str, int], list[dict[str, Any]]],
                   doc_plan: dict[str, list[int]], chunk_size: int) -> None:
    """StoreError if a journalled chunk does not hold exactly its planned docs (a damaged or edited journal
    would otherwise give a run with missing or foreign samples that looks whole)."""
    for (task, k), rows in done.items():
        planned = doc_plan.get(task, [])[k * chunk_size:(k + 1) * chunk_size] if k >= 0 else []
        if [r.get("doc_id") for r in rows] != planned:
            raise StoreError(f"cannot resume {partial.run_id}: {partial.journal_path} holds chunk {k} of {task} with "
                             "other docs than its plan; the journal is damaged")


def _check_scoring(scoring: settings.Scoring) -> None:
    """Fail before any work on a judge name nobody registered."""
    from workbench.scoring.refusal import JUDGES

    JUDGES.get(scoring.refusal_judge)


# ---- chunks: the unit of work, journalled one by one ---------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Docs `positions` (indices into the task's planned doc ids) of one task; number `index` in its journal."""

    task: str
    index: int
    positions: tuple[int, ...]


@dataclass
class ChunkResult:
    """A finished chunk: its per-sample rows, generation counters and compute seconds."""

    chunk: Chunk
    rows: list[dict]
    generation: dict[str, float]
    seconds: float


def plan_chunks(doc_plan: dict[str, list[int]], chunk_size: int) -> list[Chunk]:
    """Every chunk of the run, in plan order (fixed by the plan, so a resumed run chunks alike)."""
    return [Chunk(name, k, tuple(range(i, min(i + chunk_size, len(ids)))))
            for name, ids in doc_plan.items() for k, i in enumerate(range(0, len(ids), chunk_size))]


def plan_units(chunks: list[Chunk], output_types: dict[str, str], pool: int,
               todo: set[tuple[str, int]] | None = None) -> list[tuple[Chunk, ...]]:
    """The run's units of work: chunks pooled in plan order, generation and scoring apart, up to `pool`
    docs a unit (a continuous batch keeps its slots full across tasks; a scoring call packs several
    tasks' items into full rows; a killed run loses at most one unit). Units are cut from the whole plan,
    and a unit with any chunk in `todo` is kept whole (its finished chunks run again but are not
    journalled again), so a resumed run's batches are the first run's, chunk for chunk."""
    units: list[list[Chunk]] = []
    current: dict[bool, tuple[list[Chunk], int]] = {}
    for chunk in chunks:
        kind = output_types[chunk.task] == "generate_until"
        unit, docs = current.get(kind, (None, 0))
        if unit is None or docs + len(chunk.positions) > pool:
            unit, docs = [], 0
            units.append(unit)
        unit.append(chunk)
        current[kind] = (unit, docs + len(chunk.positions))
    return [tuple(unit) for unit in units if todo is None or any((c.task, c.index) in todo for c in unit)]


class ChunkEvaluator:
    """One loaded model and the run's plan; evaluates chunks. The driver holds one in a local run; in a
    distributed run (`workbench.eval.distributed`) each worker process holds its own."""

    def __init__(self, req: EvalRequest, doc_plan: dict[str, list[int]], scoring: dict[str, Any],
                 built: dict[str, Any] | None = None) -> None:
        from workbench.eval.models import load_model

        _quiet_lm_eval()
        self.req, self.doc_plan, self._built = req, doc_plan, dict(built or {})
        self.scoring = settings.Scoring.from_dict(scoring)
        t = time.time()
        device = {"device": req.device} if req.device else {}  # only torch backends take one
        self.lm = load_model(req.model, dtype=req.dtype, batch_size=req.batch_size, seed=req.seed, **device)
        self.load_s = time.time() - t
        self._tasks: dict[str, tuple[Any, dict[int, list]]] = {}

    def describe(self) -> dict[str, Any]:
        """What the manifest needs from the loaded model."""
        return {"model": self.lm.info.to_dict(), "chat_template": has_chat_template(self.lm),
                "load_s": round(self.load_s, 3)}

    def _task(self, name: str) -> tuple[Any, dict[int, list]]:
        if name not in self._tasks:
            built = self._built.pop(name, None) or build_task(self.req, name)
            # Built up front, so prompts do not depend on which worker runs a chunk either.
            self._tasks[name] = (built, build_requests(built, self.doc_plan[name], self.lm))
        return self._tasks[name]

    def evaluate(self, unit: Sequence[Chunk]) -> list[ChunkResult]:
        """Evaluate a unit of chunks (see `plan_units`): their requests go to the model together."""
        t = time.perf_counter()
        parts = []
        for chunk in unit:
            built, by_pos = self._task(chunk.task)
            parts.append((chunk, built, by_pos, [inst for p in chunk.positions for inst in by_pos[p]]))
        results = []
        with settings.using_scoring(self.scoring):
            gen_s = respond(self.lm, [inst for *_, insts in parts for inst in insts])
            shared = time.perf_counter() - t
            counts = [generation_counts(self.lm, insts) if gen_s is not None else {} for *_, insts in parts]
            # The model's time is shared out by generated tokens (else generations), a scoring unit's by the
            # characters of the text it scores (a cheap stand-in for its tokens).
            key = next((k for k in ("tokens", "generations") if sum(c.get(k, 0) for c in counts)), None)
            weights = ([c.get(key, 0) for c in counts] if key else
                       [sum(len(a) for inst in insts for a in inst.arguments if isinstance(a, str)) + len(insts)
                        for *_, insts in parts])
            for (chunk, built, by_pos, _), gen, w in zip(parts, counts, weights, strict=True):
                share = w / (sum(weights) or 1)
                t_rows = time.perf_counter()
                rows = chunk_rows(built.task, by_pos, list(chunk.positions), self.doc_plan[chunk.task])
                stats = {"seconds": gen_s * share, **gen} if gen_s is not None and gen["generations"] else {}
                results.append(ChunkResult(chunk, rows, stats, shared * share + time.perf_counter() - t_rows))
        return results

    def close(self) -> None:
        self.lm.close()


def _evaluate(evaluator: ChunkEvaluator, unit: Sequence[Chunk]) -> list[ChunkResult]:
    return evaluator.evaluate(unit)


class LocalExecutor:
    """Runs the chunks in this process, in plan order, on the tasks the driver already built."""

    def __init__(self, built: dict[str, Any]) -> None:
        self.built = built
        self.evaluator: ChunkEvaluator | None = None

    def start(self, req: EvalRequest, doc_plan: dict[str, list[int]], scoring: dict[str, Any]) -> list[dict]:
        self.evaluator = ChunkEvaluator(req, doc_plan, scoring, self.built)
        return [self.evaluator.describe()]

    def run(self, units: list[tuple[Chunk, ...]], on_result: Callable[[ChunkResult], None]) -> None:
        for unit in units:
            for result in self.evaluator.evaluate(unit):
                on_result(result)

    def session(self) -> dict[str, Any]:
        return {"mode": "local", "workers": 1, "threads": settings.threads()}

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()


# ---- the run ------------------------------------------------------------------------------------
def run_eval(
    req: EvalRequest | None = None,
    *,
    store: RunStore,
    resume: str | None = None,
    run_id: str | None = None,
    progress: bool = True,
    on_start: Callable[[str], None] | None = None,
    cluster: Any = None,
) -> Run:
    """Evaluate (or resume) a run and publish it to the store; returns the complete Run.

    `cluster` (a `workbench.eval.distributed.Cluster`) runs the chunks on Ray workers; this process
    alone writes the store either way.
    """
    import pandas as pd
    from tqdm import tqdm

    from workbench.eval.models import parse_spec

    _quiet_lm_eval()
    t0, cpu0 = time.time(), time.process_time()
    if resume is not None:
        partial = store.open_partial(resume)
        req, scoring = _resume_plan(partial)
    elif req is None:
        raise WorkbenchError("nothing to run")
    else:
        scoring = req.scoring()
    try:
        parse_spec(req.model)  # fail fast on an unknown spec, before any data work
        _check_scoring(scoring)
        planned = plan_tasks(req)
    except WorkbenchError as exc:
        if resume is None:
            raise
        raise type(exc)(f"cannot resume {resume}: {exc}") from None

    if resume is not None:
        recorded = partial.manifest["tasks"]
        for built, _ in planned:
            rec = recorded.get(built.spec.name)
            if rec is None or [asdict(f) for f in built.files] != rec["data"] or rec["prompt_hash"] != built.prompt_hash:
                raise StoreError(f"cannot resume {resume}: task {built.spec.name}'s data or prompt changed since it started")
            if any(not 0 <= i < len(built.task.eval_docs) for i in rec["doc_ids"]):
                raise StoreError(f"cannot resume {resume}: its manifest names docs of {built.spec.name} that do not exist")
        if set(recorded) != {built.spec.name for built, _ in planned}:
            raise StoreError(f"cannot resume {resume}: its manifest's tasks do not match its request")
        doc_plan = {name: rec["doc_ids"] for name, rec in recorded.items()}
    else:
        doc_plan = {built.spec.name: ids for built, ids in planned}

    if resume is None:  # a store that cannot be written, or a taken run id, fails before the model loads
        if run_id is not None:
            store.check_new(run_id)
        else:
            store.ensure_root()
    if cluster is not None:
        from workbench.eval.distributed import RayExecutor

        executor: Any = RayExecutor(cluster, _evaluate, ChunkEvaluator)
    else:
        executor = LocalExecutor({b.spec.name: b for b, _ in planned})
    try:
        described = executor.start(req, doc_plan, scoring.to_dict())
        info = described[0]
        if resume is None:
            manifest = {
                "created": utc_now(),
                "request": asdict(req),
                "model": info["model"],
                "tasks": {b.spec.name: _task_manifest(b, ids, req.chunk_size,
                                                      bool(b.spec.chat_template) and info["chat_template"], scoring)
                          for b, ids in planned},
                "scoring": scoring.to_dict(),
                "suite": req.suite,
                "limit": req.limit,
                "seed": req.seed,
                "data_dir": str(settings.data_dir(req.data_dir)),
                "packages": package_versions(_PACKAGES),
                "git_commit": git_commit(),
                "hardware": hardware(),
            }
            partial = store.create(new_run_id(req.model) if run_id is None else run_id, manifest)
        elif info["model"]["sha256"] != partial.manifest["model"]["sha256"]:
            raise StoreError(f"cannot resume {resume}: the model's weights changed since it started")
        if on_start:
            on_start(partial.run_id)
        # Recorded before any work, so a session that is killed still shows in the manifest.
        session = dict(executor.session(), started=utc_now())
        partial.manifest.setdefault("execution", []).append(session)
        partial.save_manifest()
        done = partial.finished_chunks()
        _check_journal(partial, done, doc_plan, req.chunk_size)
        journalled = set(done)
        timings = partial.manifest.setdefault("timings", {"tasks": {}})
        timings.setdefault("model_load_s", []).extend(d["load_s"] for d in described)
        chunks = plan_chunks(doc_plan, req.chunk_size)
        todo = [c for c in chunks if (c.task, c.index) not in done]
        output_types = {name: rec["output_type"] for name, rec in partial.manifest["tasks"].items()}
        units = plan_units(chunks, output_types, req.pool_docs, todo={(c.task, c.index) for c in todo})
        total = sum(len(ids) for ids in doc_plan.values())
        # One bar for the whole run: samples across tasks and workers, with tqdm's rate and ETA.
        bar = tqdm(total=total, initial=total - sum(len(c.positions) for c in todo), desc="eval", unit="sample",
                   disable=not progress, dynamic_ncols=True, smoothing=0.1)
        generation = timings.setdefault("generation", {})

        def finished(result: ChunkResult) -> None:
            name = result.chunk.task
            if (name, result.chunk.index) in journalled:  # ran again only to keep its unit's batches as they were
                return
            partial.append_chunk(name, result.chunk.index, result.rows)
            timings["tasks"][name] = round(timings["tasks"].get(name, 0.0) + result.seconds, 3)
            if result.generation:
                gen = generation.setdefault(name, {})
                for key, value in result.generation.items():
                    gen[key] = gen.get(key, 0) + value
                if gen.get("tokens") and gen.get("seconds", 0) > 0:
                    gen["tokens_per_s"] = round(gen["tokens"] / gen["seconds"], 2)
            bar.set_postfix_str(name, refresh=False)
            bar.update(len(result.rows))

        t_run = time.time()
        try:
            executor.run(units, finished)
        finally:
            bar.close()
            session.update(executor.session(), ended=utc_now(), eval_s=round(time.time() - t_run, 3))
            partial.save_manifest()
    finally:
        executor.close()

    done = partial.finished_chunks()
    rows = []
    for built, _ in planned:
        name = built.spec.name
        n_chunks = partial.manifest["tasks"][name]["n_chunks"]
        for k in range(n_chunks):
            if (name, k) not in done:
                raise StoreError(f"run {partial.run_id} is missing chunk {k} of {name}; resume it")
            for row in done[(name, k)]:
                rows.append({"task": name, "group": built.spec.group, "subset": built.spec.subset, **row})
    df = calibration.whole_tasks(pd.DataFrame(rows))
    metrics = compute_metrics(df, partial.manifest, req.seed)
    timings["total_s"] = round(timings.get("total_s", 0.0) + time.time() - t0, 3)
    # This process's CPU seconds (all its threads): on a shared machine, wall time alone says little.
    timings["driver_cpu_s"] = round(timings.get("driver_cpu_s", 0.0) + time.process_time() - cpu0, 3)
    partial.manifest["finished"] = utc_now()
    partial.manifest["n_samples"] = len(df)
    return store.publish(partial, df, metrics)
