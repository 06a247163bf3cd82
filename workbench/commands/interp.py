"""`workbench interp <tool>`: run one interpretability tool, save its artifact, print the artifact id.

The subcommands are built from the tool descriptions (`workbench.interp.tools.TOOLS`): a new tool
module appears here without any change to this file.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.argtypes import int_at_least, path
from workbench.commands import command
from workbench.commands._common import ARTIFACTS, CLUSTER, cluster_from_args
from workbench.errors import WorkbenchError
from workbench.settings import STORE_HELP


def _prompts(tool: Any, args: argparse.Namespace) -> Any:
    """The tool's input from --prompt (once or repeated) or from a stored sample (--run/--sample)."""
    from workbench.interp.tools import Prompts

    if tool.prompt == "none":
        return Prompts([])
    typed = args.prompt if isinstance(args.prompt, list) else ([args.prompt] if args.prompt else [])
    if args.run or args.sample:
        if typed and tool.prompt != "many":
            raise WorkbenchError("give either --prompt or --run/--sample, not both")
        if not (args.run and args.sample):
            raise WorkbenchError("--run and --sample go together (a stored run id and a sample's doc_id)")
        from workbench.interp.sources import from_run

        sample = from_run(args.run, args.sample, task=args.task, store=args.store)
        return Prompts(typed + [sample.prompt], sample)
    return Prompts(typed)


def cmd_fan_out(tool: Any, args: argparse.Namespace) -> int:
    """`--run RUN --samples SELECTOR`: the tool on every selected sample, one artifact each."""
    from tqdm import tqdm

    from workbench.interp import artifacts
    from workbench.interp.fanout import run_on_samples
    from workbench.interp.sources import select

    if args.sample or args.prompt:
        raise WorkbenchError("--samples takes the prompts from the run; drop --sample/--prompt")
    if not args.run:
        raise WorkbenchError("--samples needs --run RUN_ID (the stored eval run to take them from)")
    samples = select(args.run, args.sample_selector, task=args.task, store=args.store, limit=args.max_samples)
    if not samples:
        raise WorkbenchError(f"no sample of run {args.run} matches --samples {args.sample_selector}"
                             f"{' --task ' + args.task if args.task else ''}")
    cluster = cluster_from_args(args)
    bar = tqdm(total=len(samples), desc=f"interp {tool.command}", unit="sample", disable=args.quiet, dynamic_ncols=True)

    def save(sample: Any, result: Any) -> None:
        bar.write(artifacts.save(result, args.artifacts), file=sys.stdout)
        bar.update(1)

    try:
        flags = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})  # what travels to workers
        how = run_on_samples(tool, args.model, samples, save, cluster=cluster, args=flags)
    finally:
        bar.close()
    if not args.quiet:
        where = f" on {how['workers']} Ray workers" if how["mode"] == "ray" else ""
        print(f"{len(samples)} artifacts{where} in {artifacts.artifacts_dir(args.artifacts)}", file=sys.stderr)
    return 0


def cmd_tool(args: argparse.Namespace) -> int:
    from workbench.interp import artifacts
    from workbench.interp.hooks import load_hooked
    from workbench.interp.tools import TOOLS

    tool = TOOLS.get(args.tool)
    if getattr(args, "sample_selector", None):  # not `samples`: a tool may have its own flag of that name
        return cmd_fan_out(tool, args)
    if getattr(args, "workers", None) or getattr(args, "ray_address", None):
        raise WorkbenchError("--workers fans a tool out over many samples: add --run RUN_ID --samples SELECTOR")
    prompts = _prompts(tool, args)
    if tool.prompt == "one":
        prompts.text  # noqa: B018  (fail on a missing prompt before loading the model)
    model = load_hooked(args.model)
    result = tool.run(model, **tool.from_cli(args, prompts, model), source=prompts.source)
    aid = artifacts.save(result, args.artifacts)
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
        print(f"saved to {artifacts.artifacts_dir(args.artifacts) / aid}", file=sys.stderr)
    print(aid)
    return 0


def _add_tool(sub: Any, tool: Any, name: str | None = None) -> None:
    many = tool.from_sample is not None  # runs on stored samples: can fan out over a run's samples
    p = sub.add_parser(name or tool.command, aliases=list(tool.aliases), parents=[ARTIFACTS, *([CLUSTER] if many else [])],
                       help=tool.help.replace("%", "%%"),
                       description=tool.help + ". Saves one artifact and prints its id"
                       + (" (with --samples: one per sample, on --workers N Ray workers if given)." if many else "."))
    p.add_argument("--model", required=True,
                   help="model spec with torch weights: an alias (smollm2-135m, gemma3-270m), gguf:FILE or hf:DIR")
    if tool.prompt != "none":
        if tool.prompt == "many":
            p.add_argument("--prompt", action="append", help="a prompt (repeatable; default: a small built-in set)")
        else:
            p.add_argument("--prompt", help="the prompt text")
        p.add_argument("--run", help="take the prompt from this stored eval run ...")
        p.add_argument("--sample", help="... and this sample's doc_id")
        p.add_argument("--task", help="the sample's task, when several tasks of the run share the doc_id "
                                       "(with --samples: only this task's or group's samples)")
        p.add_argument("--store", type=path, help=STORE_HELP)
    if many:
        p.add_argument("--samples", dest="sample_selector", metavar="SELECTOR",
                       help="run on many samples of --run: wrong, correct (by the task's primary metric), all, or "
                            "comma-separated doc ids; prints one artifact id per line")
        p.add_argument("--max-samples", type=int_at_least(1), metavar="N", help="at most N of them (run order)")
    for a in tool.args:
        p.add_argument(*a.flags, **a.options)
    p.add_argument("--quiet", action="store_true", help="print only the artifact id")
    p.set_defaults(func=cmd_tool, tool=tool.name)


@command("interp", order=60, lazy="interpretability tools; each saves an artifact")
def register(subparsers: Any) -> None:
    from workbench.interp.tools import TOOLS

    ip = subparsers.add_parser("interp", help="interpretability tools; each saves an artifact",
                               description="Run an interpretability tool on a model and save its result as an "
                                           "artifact (see `workbench artifacts`). Prints the artifact id.")
    sub = ip.add_subparsers(dest="interp_command", metavar="TOOL", required=True)
    groups: dict[str, Any] = {}
    for entry in TOOLS.entries():
        tool = entry.obj
        group, _, action = tool.command.partition(" ")
        if not action:
            _add_tool(sub, tool)
            continue
        # a two-word command (`sae train`): one subcommand group per first word
        if group not in groups:
            gp = sub.add_parser(group, help=f"{group} tools (see `workbench interp {group} --help`)")
            groups[group] = gp.add_subparsers(dest=f"interp_{group}_command", metavar="ACTION", required=True)
        _add_tool(groups[group], tool, action)
