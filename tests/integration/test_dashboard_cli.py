"""``hearby dashboard`` as users run it: a real Streamlit server, its URL, a clean stop.

No services run behind it: the command only has to serve the app, say where, pass the
addresses on, and stop (with the Streamlit server it started) on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hearby import dashboard_cli
from hearby.up import http_healthy
from services.common.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    dashboard_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_win_over_the_environment_and_reach_the_dashboard_as_its_own_variables(
    monkeypatch,
):
    monkeypatch.setenv("HEARBY_RANKER_ADDRESS", "shared:1")
    monkeypatch.setenv("HEARBY_CATALOG_ADDRESS", "shared:2")
    monkeypatch.setenv("HEARBY_DASHBOARD_PORT", "9000")
    settings = dashboard_cli.settings_from_args(_args("--ranker", "flag:3", "--host", "0.0.0.0"))
    env = dashboard_cli.dashboard_env(settings)
    assert (env["HEARBY_DASHBOARD_HOST"], env["HEARBY_DASHBOARD_PORT"]) == ("0.0.0.0", "9000")
    assert env["HEARBY_DASHBOARD_RANKER_ADDRESS"] == "flag:3"
    assert env["HEARBY_DASHBOARD_CATALOG_ADDRESS"] == "shared:2"
    assert env["HEARBY_DASHBOARD_FEEDBACK_ADDRESS"] == "127.0.0.1:50055"


def test_a_taken_port_is_refused_with_the_flag_that_moves_it(capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert dashboard_cli.run(_args("--port", str(port))) == 1
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def _wait_for_line(proc: subprocess.Popen[bytes], log: Path, marker: str, timeout: float) -> str:
    """The command's output once it holds ``marker``."""
    deadline = time.monotonic() + timeout
    while marker not in (seen := log.read_text()):
        assert proc.poll() is None, f"hearby dashboard exited ({proc.returncode}):\n{seen}"
        assert time.monotonic() < deadline, f"no {marker!r} after {timeout:.0f} s:\n{seen}"
        time.sleep(0.2)
    return seen


def test_the_command_serves_the_app_prints_its_url_and_stops_on_sigterm(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = ["dashboard", "--port", str(port), "--ranker", "127.0.0.1:1"]
    log = tmp_path / "dashboard.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hearby.cli", *command],
            cwd=tmp_path,  # the app is found from the package, not the working directory
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        out = _wait_for_line(proc, log, "Ctrl-C stops it", timeout=120)
        assert f"dashboard: {url}" in out
        # Its start-up line names the service addresses it was given.
        assert "ranker 127.0.0.1:1," in out
        assert http_healthy(url + "_stcore/health")
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
            assert b"<html" in page.read().lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        # The Streamlit server went with it.
        assert not http_healthy(url + "_stcore/health")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
