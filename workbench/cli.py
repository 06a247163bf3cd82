"""`workbench` command line. Errors in the user's input print one line and exit non-zero."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from workbench import settings

settings.apply_environment()

from workbench.errors import WorkbenchError, describe_os_error  # noqa: E402


class _Format(logging.Formatter):
    """`workbench: message` for progress notes, `workbench: warning: message` for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"workbench: {level}{record.getMessage()}"


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    root = logging.getLogger("workbench")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"workbench: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; given the arguments, commands that are expensive to describe are built only if invoked."""
    from workbench.commands import add_all

    p = Parser(
        prog="workbench",
        description="Evaluate local and quantized language models on real benchmarks, offline, into one run store; "
                    "compare runs with paired statistics; open models up with interpretability tools.",
        epilog="Examples:\n  workbench eval --model smollm2-135m --suite quick\n"
               "  workbench eval --model gguf:model.gguf --tasks mmlu_anatomy,arc_easy --limit 20\n"
               "  workbench runs list\n  workbench compare RUN_A RUN_B\n"
               "  workbench interp logit-lens --model smollm2-135m --prompt 'The capital of France is'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    invoked = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    add_all(sub, invoked)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    _logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the environment refused (disk full, permissions) somewhere no command anticipated
        print(f"workbench: error: {describe_os_error(exc)}", file=sys.stderr)
        return WorkbenchError.exit_code
    except KeyboardInterrupt as exc:
        hint = str(exc) or "an interrupted eval can be continued with `workbench eval --resume RUN_ID`"
        print(f"workbench: interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
