"""CLI subcommands: one module each, registered with `@command(name, order)`; the CLI finds them."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.registry import Registry

Register = Callable[[Any], None]  # adds the command's parser to the top-level subparsers


@dataclass(frozen=True)
class Command:
    name: str
    register: Register
    order: int         # position in `workbench --help`
    lazy: str = ""     # if set, the command's parser is built only when it is invoked (its help line otherwise)


COMMANDS: Registry[Command] = Registry("command", package=__name__)


def command(name: str, order: int, lazy: str = "") -> Callable[[Register], Register]:
    """Decorator for a module's `register(subparsers)`: adds `workbench <name>`.

    `lazy`: the one-line help shown while the command is not invoked; for commands whose full parser
    is expensive to build (the interp tools import torch to describe themselves).
    """

    def deco(fn: Register) -> Register:
        COMMANDS.register(name, Command(name, fn, order, lazy))
        return fn

    return deco


def add_all(subparsers: argparse._SubParsersAction, invoked: str | None = None) -> None:
    """Every command's parser; a lazy one in full only if it is `invoked` (None: build all)."""
    for cmd in sorted((e.obj for e in COMMANDS.entries()), key=lambda c: (c.order, c.name)):
        if cmd.lazy and invoked is not None and invoked != cmd.name:
            subparsers.add_parser(cmd.name, help=cmd.lazy)
        else:
            cmd.register(subparsers)
