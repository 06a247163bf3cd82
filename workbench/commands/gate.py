"""`workbench gate --baseline RUN --candidate RUN`: a CI regression gate (exit 0 pass, 1 regression, 2 unusable)."""
from __future__ import annotations

import argparse
from typing import Any

from workbench.argtypes import path, rng_seed
from workbench.commands import command
from workbench.commands._common import STORE


def cmd_gate(args: argparse.Namespace) -> int:
    from workbench.analysis import gate
    from workbench.errors import WorkbenchError
    from workbench.store import RunStore

    try:
        policy = gate.load_policy(args.policy)
        store = RunStore(args.store)
        result = gate.evaluate_gate(store.load(args.baseline), store.load(args.candidate), policy, seed=args.seed,
                                    allow_config_diff=args.allow_config_diff)
    except WorkbenchError as exc:
        # CI still gets a parseable report saying why the gate could not judge (where it can be written).
        try:
            if args.junit:
                gate.write_junit(gate.error_junit(str(exc)), args.junit)
            if args.summary:
                gate.append_summary(f"## workbench gate: UNUSABLE INPUT\n\n{exc}\n", args.summary)
        except WorkbenchError as write_exc:
            raise WorkbenchError(f"{exc} (and {write_exc})") from None
        raise
    text = gate.summary_markdown(result)
    if args.junit:
        gate.write_junit(gate.junit_xml(result), args.junit)
    if args.summary:
        gate.append_summary(text, args.summary)
    print(text)
    return result.exit_code


@command("gate", order=35)
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gate", parents=[STORE], help="CI regression gate: candidate run vs baseline under a policy",
        description="Compare a candidate run with a baseline on the same items. A task fails when its drop exceeds "
                    "the policy's max_drop and is significant at alpha (McNemar exact / paired permutation, "
                    "Holm-corrected across gated tasks). Exit 0 pass, 1 regression, 2 unusable input.",
        epilog="Example: workbench gate --baseline RUN_A --candidate RUN_B --policy gate.yaml "
               "--junit gate.xml --summary \"$GITHUB_STEP_SUMMARY\"")
    p.add_argument("--baseline", required=True, metavar="RUN", help="baseline run id")
    p.add_argument("--candidate", required=True, metavar="RUN", help="candidate run id")
    p.add_argument("--policy", type=path, help="policy YAML: max_drop, alpha, min_items, metric, correction, per-task overrides")
    p.add_argument("--junit", type=path, metavar="FILE", help="write a JUnit XML report here")
    p.add_argument("--summary", type=path, metavar="FILE", help="append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--seed", type=rng_seed, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--allow-config-diff", action="store_true",
                   help="gate runs scored under different settings (judge, sandbox limits)")
    p.set_defaults(func=cmd_gate)
