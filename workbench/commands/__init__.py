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
    order: int  # position in `workbench --help`


COMMANDS: Registry[Command] = Registry("command", package=__name__)


def command(name: str, order: int) -> Callable[[Register], Register]:
    """Decorator for a module's `register(subparsers)`: adds `workbench <name>`."""

    def deco(fn: Register) -> Register:
        COMMANDS.register(name, Command(name, fn, order))
        return fn

    return deco


def add_all(subparsers: argparse._SubParsersAction) -> None:
    for cmd in sorted((e.obj for e in COMMANDS.entries()), key=lambda c: (c.order, c.name)):
        cmd.register(subparsers)
