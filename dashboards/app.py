"""Production entry point: `gunicorn -w 2 -b 127.0.0.1:8050 dashboards.app:server`.

The store and artifact root come from $WORKBENCH_STORE and $WORKBENCH_ARTIFACTS (their usual defaults
otherwise), as for the CLI.
"""
from workbench.dashboard import create_app

app = create_app()
server = app.server
