"""`workbench dashboard`: serve the Dash dashboard over a run store and an artifact root (read only)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.commands import command
from workbench.commands._common import ARTIFACTS, STORE
from workbench.errors import WorkbenchError


def _check_listen(host: str, port: int) -> None:
    """WorkbenchError now, not a server error later, if the address cannot be listened on (bad host, port taken)."""
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise WorkbenchError(f"--host {host!r} is not an address of this machine ({exc})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind(addr)
        except OSError as exc:
            raise WorkbenchError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_dashboard(args: argparse.Namespace) -> int:
    from workbench.dashboard import create_app

    if not 0 <= args.port <= 65535:
        raise WorkbenchError(f"--port {args.port} is not a TCP port (0-65535)")
    _check_listen(args.host, args.port)
    app = create_app(args.store, args.artifacts, jobs=not args.no_jobs)
    data = app.workbench_data
    for root, what in ((data.store.root, "run store"), (data.artifacts_root, "artifact root")):
        if root.exists() and not root.is_dir():
            raise WorkbenchError(f"{what} {root} is not a directory")
    print(f"dashboard on http://{args.host}:{args.port}/  (store: {data.store.root}, artifacts: {data.artifacts_root})",
          file=sys.stderr, flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug, dev_tools_disable_version_check=True)
    return 0


@command("dashboard", order=70)
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dashboard", parents=[STORE, ARTIFACTS], help="serve the dashboard: leaderboard, run comparison, samples, interpretability views",
        description="Serve a Dash dashboard over the run store (read only) and the artifact root; from a sample's "
                    "panel it can create attention, logit-lens and attribution artifacts with the run's own model "
                    "as background jobs (--no-jobs turns that off). Assets are served locally, so it works offline. For production use gunicorn: "
                    "`gunicorn -w 2 -b 127.0.0.1:8050 dashboards.app:server` (store and artifacts from "
                    "$WORKBENCH_STORE and $WORKBENCH_ARTIFACTS).",
        epilog="Example: workbench dashboard --store workbench-runs --artifacts workbench-artifacts --port 8050")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    p.add_argument("--no-jobs", action="store_true",
                   help="do not offer creating artifacts from the sample panel (then nothing writes to the artifact root)")
    p.add_argument("--debug", action="store_true", help="Dash dev tools and reloading (development only)")
    p.set_defaults(func=cmd_dashboard)
