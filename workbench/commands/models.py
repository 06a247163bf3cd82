"""`workbench models list`: the embedded models and the model spec forms."""
from __future__ import annotations

import argparse
from typing import Any

from workbench.commands import command


def cmd_list(args: argparse.Namespace) -> int:
    from workbench.eval.models import backends
    from workbench.eval.models.embedded import ALIASES

    print("embedded aliases:")
    for name, alias in ALIASES.items():
        print(f"  {name:<16} {alias.description}")
    print("\nspec forms:")
    for prefix, help_ in backends().items():
        print(f"  {prefix + ':<...>':<16} {help_}")
    return 0


@command("models", order=40)
def register(subparsers: Any) -> None:
    m = subparsers.add_parser("models", help="list model backends and embedded models", description="Model registry.")
    sub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list embedded aliases and spec forms", description="List models.").set_defaults(
        func=cmd_list)
