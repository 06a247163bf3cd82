"""`workbench dashboard` and the gunicorn entry point."""
from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from workbench.cli import main


def test_bad_port_is_one_line_exit_2(capsys, tmp_path):
    rc = main(["dashboard", "--store", str(tmp_path), "--port", "70000"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "workbench: error: --port 70000 is not a TCP port (0-65535)"


def test_gunicorn_entry_point_reads_the_environment(monkeypatch, dash_env):
    monkeypatch.setenv("WORKBENCH_STORE", str(dash_env.store))
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(dash_env.artifacts))
    mod = importlib.reload(importlib.import_module("dashboards.app"))
    assert mod.app.workbench_data.store.root == dash_env.store
    client = mod.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200


@pytest.mark.slow
def test_cli_serves_on_loopback(dash_env, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "dashboard", "--store", str(dash_env.store),
                             "--artifacts", str(dash_env.artifacts), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline and body is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert body is not None and b'"url"' in body
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert f"dashboard on http://127.0.0.1:{port}/" in out


def test_list_commands_report_the_messy_store(capsys, dash_env):
    """`runs list` / `artifacts list` on the dashboard's messy store: the good entries, and each bad one named."""
    assert main(["runs", "list", "--store", str(dash_env.store)]) == 0
    out, err = capsys.readouterr()
    assert all(rid in out for rid in dash_env.good_runs)
    assert all(str(dash_env.store / name) in err for name in dash_env.stray)
    assert main(["artifacts", "list", "--artifacts", str(dash_env.artifacts)]) == 0
    out, err = capsys.readouterr()
    assert dash_env.odd_artifact in out and all(str(dash_env.artifacts / n) in err for n in dash_env.bad_artifacts)
