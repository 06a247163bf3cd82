"""`workbench tasks list`: suites, groups and tasks."""
from __future__ import annotations

import argparse
import json
from typing import Any

from workbench.commands import command
from workbench.commands._common import JSON


def cmd_list(args: argparse.Namespace) -> int:
    from workbench.eval import tasks as T

    specs, grp = T.registry(), T.groups()
    if args.json:
        print(json.dumps({"groups": grp, "tasks": {n: {"benchmark": s.benchmark, "subset": s.subset, "group": s.group}
                                                   for n, s in specs.items()}, "suites": T.suites()}, indent=2))
        return 0
    print("suites:")
    for name, s in T.suites().items():
        print(f"  {name:<14} {s.get('description', '')}")
    print("\ngroups:")
    for name, members in grp.items():
        print(f"  {name:<14} {len(members)} tasks ({members[0]}, ...)")
    print("\ntasks:")
    for name, s in specs.items():
        if not s.group:
            print(f"  {name:<24} {s.benchmark}")
    print("\ntasks made on demand:")
    for entry in T.TASK_KINDS.entries():
        print(f"  {entry.name + ':PATH':<24} {entry.help}")
    print(f"\n({len(specs)} tasks in all; `workbench tasks list --json` lists every one)")
    return 0


@command("tasks", order=50)
def register(subparsers: Any) -> None:
    t = subparsers.add_parser("tasks", help="list tasks, groups and suites", description="Task registry.")
    sub = t.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    sub.add_parser("list", parents=[JSON], help="list suites, groups and tasks", description="List tasks.").set_defaults(
        func=cmd_list)
