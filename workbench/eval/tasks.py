"""Task registry: lm-eval task configs bound to the data layer, plus groups and suites.

Tasks are declared in benchmarks/<benchmark>.yaml. Each names an lm-eval task config (a built-in
one under `lm_eval:`, or one of ours under `config:` relative to benchmarks/tasks/); the workbench
keeps that config's prompt, few-shot, filter and metric machinery and swaps only the data source.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from workbench import settings
from workbench.errors import TaskError
from workbench.eval.data import Benchmark, FileRecord, benchmarks, corpus_benchmark, load_dataset
from workbench.registry import Registry

# Config keys that decide what the model sees and how it is scored: their hash is the
# "prompt-template hash" a run manifest records, so two runs with equal hashes saw equal prompts.
_PROMPT_KEYS = (
    "description", "doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter",
    "fewshot_delimiter", "fewshot_config", "num_fewshot", "output_type", "metric_list",
    "filter_list", "generation_kwargs", "process_results", "repeats",
)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    benchmark: str
    subset: str | None
    config_path: str
    group: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    chat_template: bool = False  # prompts rendered with the model's chat template, few-shot as turns
    primary_metric: str | None = None  # the headline metric, when lm-eval's usual order would pick wrong
    scoring: tuple[str, ...] = ()     # the scoring settings (settings.Scoring fields) its metrics depend on
    bench: Benchmark | None = None    # the data of a task made on demand (`perplexity:PATH`), not declared


@dataclass
class BuiltTask:
    """An lm-eval task ready to run, with what the manifest needs to pin it."""

    spec: TaskSpec
    task: Any  # lm_eval.api.task.ConfigurableTask
    files: list[FileRecord]
    version: Any
    prompt_hash: str
    num_fewshot: int


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


@lru_cache(maxsize=1)
def _registry(root: str) -> tuple[dict[str, TaskSpec], dict[str, list[str]]]:
    specs: dict[str, TaskSpec] = {}
    groups: dict[str, list[str]] = {}
    for bench in benchmarks().values():
        for decl in bench.tasks:
            subsets = [decl["subset"]] if "subset" in decl else list(decl.get("subsets") or bench.subsets) or [None]
            if "{subset}" not in decl["name"]:
                subsets = subsets[:1]
            for subset in subsets:
                name = decl["name"].format(subset=subset or "")
                if name in specs:
                    raise TaskError(f"{bench.source}: task {name} is declared twice")
                if "lm_eval" in decl:
                    path = f"lm_eval:{decl['lm_eval'].format(subset=subset or '')}"
                else:
                    path = str(Path(root) / "tasks" / decl["config"].format(subset=subset or ""))
                extra = {k: v for k, v in decl.items()
                         if k not in ("name", "group", "lm_eval", "config", "subset", "subsets", "chat_template",
                                      "primary_metric", "scoring")}
                specs[name] = TaskSpec(name, bench.name, subset, path, decl.get("group"), tuple(sorted(extra.items())),
                                       bool(decl.get("chat_template", False)), decl.get("primary_metric"),
                                       tuple(decl.get("scoring") or ()))
                if decl.get("group"):
                    groups.setdefault(decl["group"], []).append(name)
    return specs, groups


def registry() -> dict[str, TaskSpec]:
    return _registry(str(settings.benchmarks_dir()))[0]


def groups() -> dict[str, list[str]]:
    return _registry(str(settings.benchmarks_dir()))[1]


# Tasks named `<kind>:<argument>` are made on demand, e.g. `perplexity:PATH` over the user's own text.
TASK_KINDS: Registry[Callable[[str], TaskSpec]] = Registry("task kind", error=TaskError)


@TASK_KINDS.register("perplexity")
def perplexity_task(path: str) -> TaskSpec:
    """Perplexity of a text or JSONL file, or of every file in a folder (lm-eval's `wikitext` scoring)."""
    if not path:
        raise TaskError("perplexity: needs a path, e.g. --tasks perplexity:notes.txt")
    bench = corpus_benchmark(path)
    return TaskSpec(f"perplexity:{Path(bench.mirror_dir) / bench.splits['test']}", bench.name, None,
                    str(settings.benchmarks_dir() / "tasks" / "perplexity.yaml"), primary_metric="bits_per_byte",
                    bench=bench)


def resolve(names: list[str]) -> list[TaskSpec]:
    """Expand group names and check every name; unknown names raise TaskError with suggestions."""
    specs, grp = registry(), groups()
    out: list[TaskSpec] = []
    for name in names:
        kind, colon, arg = name.partition(":")
        if name in grp:
            out.extend(specs[n] for n in grp[name])
        elif name in specs:
            out.append(specs[name])
        elif colon and kind in TASK_KINDS:
            out.append(TASK_KINDS.get(kind)(arg))
        else:
            close = difflib.get_close_matches(name, list(grp) + list(specs), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `workbench tasks list`"
            raise TaskError(f"unknown task {name!r}{hint}")
    seen: set[str] = set()
    return [s for s in out if not (s.name in seen or seen.add(s.name))]


def _load_config(spec: TaskSpec) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    if spec.config_path.startswith("lm_eval:"):
        path = _lm_eval_tasks_dir() / spec.config_path[len("lm_eval:"):]
    else:
        path = Path(spec.config_path)
    if not path.is_file():
        raise TaskError(f"task {spec.name}: config file not found: {path}")
    cfg = load_yaml(path, resolve_func=True)
    for key in ("tag", "group", "task_list", "dataset_kwargs"):
        cfg.pop(key, None)
    return cfg


def _once_per_split(process_docs):
    """`process_docs` run once per split: lm-eval calls it on every `test_docs()`/`eval_docs` access (BBQ's
    runs a row-by-row `datasets.map` over the whole category: half of planning the quick suite). Wrapped
    with the original's name, so the prompt hash is unchanged."""
    import functools

    done: dict[int, tuple[Any, Any]] = {}

    @functools.wraps(process_docs)
    def wrapper(dataset):
        key = id(dataset)
        if key not in done:  # the split object is kept alongside, so its id cannot be reused
            done[key] = (dataset, process_docs(dataset))
        return done[key][1]

    return wrapper


def prompt_hash(config: dict[str, Any]) -> str:
    def norm(v: Any) -> Any:
        if callable(v):
            return f"{getattr(v, '__module__', '')}.{getattr(v, '__qualname__', repr(v))}"
        return v

    payload = {k: norm(config.get(k)) for k in _PROMPT_KEYS if config.get(k) is not None}
    blob = json.dumps(payload, sort_keys=True, default=lambda v: norm(v) if callable(v) else str(v))
    return hashlib.sha256(blob.encode()).hexdigest()


def build(
    spec: TaskSpec,
    data_dir: str | os.PathLike | None = None,
    num_fewshot: int | None = None,
    fewshot_seed: int = 1234,
) -> BuiltTask:
    """Build the lm-eval ConfigurableTask for a spec on mirror data (lm-eval's few-shot rules apply)."""
    from lm_eval.api.task import ConfigurableTask

    bench: Benchmark = spec.bench or benchmarks()[spec.benchmark]
    dataset, files = load_dataset(bench, spec.subset, data_dir)
    cfg = _load_config(spec)
    for holder in (cfg, cfg.get("fewshot_config") or {}):
        if callable(holder.get("process_docs")):
            holder["process_docs"] = _once_per_split(holder["process_docs"])
    cfg.update(dict(spec.overrides))
    cfg["task"] = spec.name
    cfg["custom_dataset"] = lambda **_: dataset
    cfg["metadata"] = dict(cfg.get("metadata") or {}, benchmark=bench.name, subset=spec.subset)
    try:
        task = ConfigurableTask(config=cfg)
    except Exception as exc:  # a config that lm-eval rejects is a task problem, not a crash
        raise TaskError(f"task {spec.name}: lm-eval could not build it: {exc}") from exc
    # lm-eval's rule: --num_fewshot overrides every task except those whose config pins 0.
    if num_fewshot is not None and task.get_config("num_fewshot") != 0:
        task.set_config(key="num_fewshot", value=num_fewshot)
    elif task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    task.set_fewshot_seed(seed=fewshot_seed)
    _check_fewshot_pool(spec, task, asked=num_fewshot is not None)
    return BuiltTask(
        spec=spec,
        task=task,
        files=files,
        version=task.VERSION,
        prompt_hash=prompt_hash(task.dump_config()),
        num_fewshot=int(task.get_config("num_fewshot") or 0),
    )


def _check_fewshot_pool(spec: TaskSpec, task: Any, asked: bool) -> None:
    """TaskError, before any work, when a task wants more few-shot examples than its few-shot source holds."""
    shots = int(task.get_config("num_fewshot") or 0)
    if not shots:
        return
    sampler = getattr(task, "sampler", None)
    pool = len(sampler.fewshot_docs()) if sampler is not None else 0
    split = task.fewshot_cfg.split
    if split == task.config.test_split:  # as lm-eval: a doc is never its own example, so one fewer to draw from
        pool -= 1
    if shots > pool:
        source = f"in its {split} split" if split else "for it"
        why = f"--num-fewshot {shots} asked" if asked else f"its config asks for {shots} few-shot examples"
        raise TaskError(f"task {spec.name}: {why}, but only {max(pool, 0)} few-shot example(s) exist {source}")


# ---- suites -------------------------------------------------------------------------------------
def suites() -> dict[str, dict[str, Any]]:
    path = settings.benchmarks_dir() / "suites.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("suites", {}) if path.exists() else {}


def suite_tasks(name: str) -> dict[str, dict[str, Any]]:
    """The suite's entries {task or group: {n | per_subset, subsets}}; TaskError if unknown."""
    all_suites = suites()
    if name not in all_suites:
        raise TaskError(f"unknown suite {name!r}; known suites: {', '.join(sorted(all_suites)) or 'none'}")
    return {k: dict(v or {}) for k, v in all_suites[name]["tasks"].items()}


def select_docs(task_name: str, n_docs: int, *, limit: int | None, n: int | None, seed: int) -> list[int]:
    """Doc indices to evaluate: lm-eval's first-N for --limit, else a seeded random subset of n."""
    if limit is not None:
        return list(range(min(limit, n_docs)))
    if n is None or n >= n_docs:
        return list(range(n_docs))
    rng = random.Random(f"{seed}:{task_name}")
    return sorted(rng.sample(range(n_docs), n))
