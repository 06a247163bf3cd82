"""`workbench artifacts list|show`: read the interpretability artifact store."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.commands import command
from workbench.commands._common import ARTIFACTS, JSON, verify_entries


def _source(m: dict[str, Any]) -> str:
    s = m.get("source")
    return f"{s.get('run_id')}/{s.get('task')}/{s.get('doc_id')}" if isinstance(s, dict) else "-"


def cmd_list(args: argparse.Namespace) -> int:
    from workbench.store.artifacts import ArtifactStore

    store = ArtifactStore(args.artifacts)
    items, bad = store.scan()
    for path, why in bad:
        print(f"workbench: warning: skipped {path}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({"artifacts": [{k: m.get(k) for k in ("id", "kind", "created", "model", "prompts", "source")}
                                        for m in items],
                          "unreadable": [{"path": str(p), "reason": why} for p, why in bad]}, indent=2))
        return 0
    if not items:
        print(f"no artifacts in {store.root}")
        return 0
    print(f"{'artifact_id':<44} {'kind':<12} {'model':<18} {'source':<28} prompt")
    for m in items:
        prompt = str((m.get("prompts") or [""])[0]).replace("\n", " ")[:40]
        spec = str((m.get("model") or {}).get("spec", "?"))
        print(f"{m['id']:<44} {m['kind']:<12} {spec[:18]:<18} {_source(m)[:28]:<28} {prompt}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from workbench.store.artifacts import ArtifactStore

    store = ArtifactStore(args.artifacts)

    def scan() -> tuple[list[str], list]:
        manifests, bad = store.scan()
        return [m["id"] for m in manifests], bad

    return verify_entries(args.artifact_ids, scan, store.verify, "artifact")


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.interp import artifacts

    manifest = artifacts.read_manifest(args.artifact_id, args.artifacts)
    if args.json:
        print(json.dumps(manifest, indent=2, default=str))
        return 0
    result = artifacts.load(args.artifact_id, args.artifacts)
    model = manifest.get("model") or {}
    print(f"artifact: {manifest.get('id')}\nkind:     {manifest['kind']}\ncreated:  {manifest.get('created')}")
    print(f"model:    {model.get('spec')} (sha256 {str(model.get('sha256'))[:16]}...)")
    print(f"source:   {_source(manifest)}")
    for p in manifest.get("prompts", [])[:3]:
        print(f"prompt:   {p[:200]!r}")
    print(f"params:   {json.dumps({k: v for k, v in (manifest.get('params') or {}).items() if k not in ('labels', 'declaration')})}")
    print(f"files:    {', '.join(manifest.get('files', []))}\n")
    print(result.summary())
    return 0


@command("artifacts", order=65)
def register(subparsers: Any) -> None:
    a = subparsers.add_parser("artifacts", help="list, inspect and verify interpretability artifacts",
                              description="Read the artifact store.")
    sub = a.add_subparsers(dest="artifacts_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", parents=[ARTIFACTS, JSON], help="list artifacts",
                        description="List artifacts, oldest first. Entries that cannot be read are named on stderr "
                                    "and skipped.")
    ls.set_defaults(func=cmd_list)
    sh = sub.add_parser("show", parents=[ARTIFACTS, JSON], help="show one artifact",
                        description="Show one artifact's manifest and summary.")
    sh.add_argument("artifact_id")
    sh.set_defaults(func=cmd_show)
    v = sub.add_parser("verify", parents=[ARTIFACTS], help="check artifacts' files against their recorded sha256",
                       description="Check each artifact's files against the sha256 its manifest recorded. Exit 0 "
                                   "all good, 1 a problem found.")
    v.add_argument("artifact_ids", nargs="*", metavar="ARTIFACT", help="artifacts to check (default: all)")
    v.set_defaults(func=cmd_verify)
