"""Each interpretability tool described once: entry point, CLI arguments, artifact kind, and how it runs
on a stored eval sample. `workbench interp <tool>`, the dashboard's sample-panel jobs and fan-out over
many samples are all built from these descriptions; a new tool is one module that registers one.

A tool's name is its artifact kind (`logit_lens`); its CLI command is the same name with dashes
(`workbench interp logit-lens`) unless it names another (`cli`, e.g. `collect` for the kind
`activations`; two words, `sae train`, make a subcommand group). Its result dataclass is registered
with `@register_kind(name)`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.interp.errors import InterpError
from workbench.interp.sources import SampleSource
from workbench.registry import Registry


@dataclass(frozen=True)
class Arg:
    """One tool-specific command-line argument (argparse `add_argument(*flags, **options)`)."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Prompts:
    """What the command line asked the tool to look at: prompt text(s), or a stored eval sample."""

    texts: list[str]
    sample: SampleSource | None = None

    @property
    def text(self) -> str:
        if not self.texts:
            raise InterpError("a prompt is needed: --prompt TEXT or --run RUN_ID --sample DOC_ID")
        return self.texts[0]

    @property
    def source(self) -> dict[str, Any] | None:
        """The sample link recorded in the artifact manifest (None for a typed prompt)."""
        return self.sample.link() if self.sample else None


# (parsed CLI args, prompts, loaded HookedModel) -> keyword arguments of `run` (besides model and source)
FromCli = Callable[[argparse.Namespace, Prompts, Any], dict[str, Any]]
# (stored eval sample, loaded HookedModel[, artifact root if `uses_artifacts`]) -> keyword arguments of `run`
FromSample = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    name: str                       # = the artifact kind it saves
    run: Callable[..., Any]         # run(model, **kwargs, source=...) -> a registered result dataclass
    help: str                       # one paragraph: what it computes and stores
    from_cli: FromCli
    args: tuple[Arg, ...] = ()
    prompt: str = "one"             # "one": --prompt or --run/--sample; "optional": the same, not required;
                                    # "many": repeatable --prompt; "none"
    from_sample: FromSample | None = None  # None: not offered on a stored sample (dashboard, fan-out)
    aliases: tuple[str, ...] = ()   # former CLI names still accepted
    cli: str = ""                   # the CLI command when it is not the name with dashes ("collect", "sae train")
    uses_artifacts: bool = False    # from_sample also gets the artifact root (to find the artifacts it builds on)

    @property
    def command(self) -> str:
        return self.cli or self.name.replace("_", "-")

    def on_sample(self, model: Any, sample: SampleSource, artifacts: Any = None,
                  args: argparse.Namespace | None = None) -> Any:
        """Run the tool on a stored eval sample, linking the sample as the artifact's source; with `args` (a
        command line's), its flags apply as they do to `--run RUN --sample ID`, else the tool's defaults."""
        if self.from_sample is None:
            raise InterpError(f"{self.name} does not run on a single eval sample")
        extra = (artifacts,) if self.uses_artifacts else ()
        kwargs = (self.from_sample(sample, model, *extra) if args is None
                  else self.from_cli(args, Prompts([sample.prompt], sample), model))
        return self.run(model, **kwargs, source=sample.link())


TOOLS: Registry[Tool] = Registry("interpretability tool", package="workbench.interp", error=InterpError)


def register_tool(tool: Tool) -> Tool:
    return TOOLS.register(tool.name, tool, help=tool.help)


def sample_tools() -> list[str]:
    """The tools that run on one stored eval sample (the dashboard's sample panel offers these)."""
    return [e.name for e in TOOLS.entries() if e.obj.from_sample is not None]


def single_token_or_none(model: Any, text: str | None) -> str | None:
    """`text` if it is exactly one token of the model's vocabulary (a sample's gold ' B'), else None."""
    from workbench.interp.errors import TokenError

    if not text:
        return None
    try:
        model.single_token(text)
    except TokenError:
        return None
    return text
