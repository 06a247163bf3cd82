"""`workbench artifacts list|show`: read the interpretability artifact store."""
from __future__ import annotations

import argparse
import json
from typing import Any

ARTIFACTS_HELP = "artifact root (default: $WORKBENCH_ARTIFACTS, else ./workbench-artifacts)"


def _source(m: dict[str, Any]) -> str:
    s = m.get("source")
    return f"{s['run_id']}/{s['task']}/{s['doc_id']}" if s else "-"


def cmd_list(args: argparse.Namespace) -> int:
    from workbench.interp.artifacts import artifacts_dir, list_artifacts

    items = list_artifacts(args.artifacts)
    if args.json:
        print(json.dumps([{k: m.get(k) for k in ("id", "kind", "created", "model", "prompts", "source")}
                          for m in items], indent=2))
        return 0
    if not items:
        print(f"no artifacts in {artifacts_dir(args.artifacts)}")
        return 0
    print(f"{'artifact_id':<44} {'kind':<12} {'model':<18} {'source':<28} prompt")
    for m in items:
        prompt = (m.get("prompts") or [""])[0].replace("\n", " ")[:40]
        print(f"{m['id']:<44} {m['kind']:<12} {m['model']['spec'][:18]:<18} {_source(m)[:28]:<28} {prompt}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.interp import artifacts

    manifest = artifacts.read_manifest(args.artifact_id, args.artifacts)
    if args.json:
        print(json.dumps(manifest, indent=2, default=str))
        return 0
    result = artifacts.load(args.artifact_id, args.artifacts)
    print(f"artifact: {manifest['id']}\nkind:     {manifest['kind']}\ncreated:  {manifest['created']}")
    print(f"model:    {manifest['model']['spec']} (sha256 {manifest['model']['sha256'][:16]}...)")
    print(f"source:   {_source(manifest)}")
    for p in manifest.get("prompts", [])[:3]:
        print(f"prompt:   {p[:200]!r}")
    print(f"params:   {json.dumps({k: v for k, v in manifest['params'].items() if k not in ('labels', 'declaration')})}")
    print(f"files:    {', '.join(manifest.get('files', []))}\n")
    print(result.summary())
    return 0


def register(subparsers: Any) -> None:
    a = subparsers.add_parser("artifacts", help="list and inspect interpretability artifacts",
                              description="Read the artifact store.")
    sub = a.add_subparsers(dest="artifacts_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list artifacts", description="List artifacts, oldest first.")
    ls.add_argument("--artifacts", help=ARTIFACTS_HELP)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_list)
    sh = sub.add_parser("show", help="show one artifact", description="Show one artifact's manifest and summary.")
    sh.add_argument("artifact_id")
    sh.add_argument("--artifacts", help=ARTIFACTS_HELP)
    sh.add_argument("--json", action="store_true", help="print the manifest as JSON")
    sh.set_defaults(func=cmd_show)
