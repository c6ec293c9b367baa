"""``hearby dashboard``: the Streamlit dashboard on its own, against services already running.

    hearby dashboard                               # http://127.0.0.1:8501/, services on 127.0.0.1
    hearby dashboard --port 8600 --host 0.0.0.0    # reachable from other machines
    hearby dashboard --ranker gpu-box:50053 --catalog gpu-box:50054 --feedback gpu-box:50055

``hearby up`` (and ``make demo``) already serve it at the end of their start; this command
is for a stack started elsewhere, or for a second dashboard on another port. Each address
is the flag, else ``HEARBY_DASHBOARD_<SERVICE>_ADDRESS``, else the shared
``HEARBY_<SERVICE>_ADDRESS``, else the service's default port on 127.0.0.1. It prints the
URL once the dashboard answers, and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from dashboard.settings import DashboardSettings
from hearby.up import (
    StackError,
    check_ports_free,
    dashboard_url,
    http_healthy,
    stopped_on_signals,
)

# Service -> what the dashboard asks of it (for --help).
SERVICES = {
    "control": "versions and experiments",
    "vectorstore": "embeddings for the map",
    "ranker": "neighbour lists",
    "catalog": "tracks, labels and audio",
    "feedback": "ratings",
}
# Streamlit imports in a few seconds; a loaded machine gets far more.
_START_SECONDS = 120.0
_STOP_SECONDS = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``[--host HOST] [--port PORT] [--control ADDR] [--ranker ADDR] ...``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    defaults = DashboardSettings.model_fields
    parser.add_argument(
        "--host",
        default=None,
        help=f"interface to bind (HEARBY_DASHBOARD_HOST, {defaults['host'].default})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"HTTP port (HEARBY_DASHBOARD_PORT, {defaults['port'].default})",
    )
    for service, purpose in SERVICES.items():
        variable = service.upper()
        parser.add_argument(
            f"--{service}",
            default=None,
            metavar="HOST:PORT",
            help=f"the {service} service, for {purpose} (HEARBY_DASHBOARD_{variable}_ADDRESS, "
            f"HEARBY_{variable}_ADDRESS, {defaults[f'{service}_address'].default})",
        )


def settings_from_args(args: argparse.Namespace) -> DashboardSettings:
    """The dashboard's settings: the flags given, the environment for the rest."""
    flags = {"host": args.host, "port": args.port}
    flags.update({f"{service}_address": getattr(args, service) for service in SERVICES})
    return DashboardSettings(**{name: value for name, value in flags.items() if value is not None})


def dashboard_env(settings: DashboardSettings) -> dict[str, str]:
    """``HEARBY_DASHBOARD_*`` variables that make ``python -m dashboard`` use ``settings``.

    The dashboard's own variables win over the shared ``HEARBY_<SERVICE>_ADDRESS`` ones, so
    a flag overrides whatever the environment says.
    """
    env = {"HEARBY_DASHBOARD_HOST": settings.host, "HEARBY_DASHBOARD_PORT": str(settings.port)}
    for service in SERVICES:
        env[f"HEARBY_DASHBOARD_{service.upper()}_ADDRESS"] = getattr(settings, f"{service}_address")
    return env


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str) -> bool:
    """Waits until ``url`` answers ok; False when the dashboard exits or takes too long."""
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        if http_healthy(url + "_stcore/health"):
            return True
        time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby dashboard``: serves until Ctrl-C (0) or the dashboard dies (1)."""
    try:
        settings = settings_from_args(args)
        check_ports_free(settings.host, {"dashboard": settings.port})
    except ValueError as exc:  # pydantic's ValidationError is one
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StackError:
        print(
            f"error: port {settings.port} on {settings.host} is in use (a running `hearby up` "
            "serves a dashboard there already?); pick another with --port",
            file=sys.stderr,
        )
        return 1
    url = dashboard_url(settings.host, settings.port)
    # Its own session: Ctrl-C reaches us only, and we stop it in order.
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard"],
        env={**os.environ, **dashboard_env(settings)},
        start_new_session=True,
    )
    with stopped_on_signals(_interrupt, lambda: _stop(proc)):
        return _serve(proc, url)


def _serve(proc: subprocess.Popen[bytes], url: str) -> int:
    try:
        if not _wait_healthy(proc, url):
            print(
                f"error: the dashboard did not come up on {url} (exit code {proc.poll()}); "
                "its log is above",
                file=sys.stderr,
            )
            return 1
        print(
            f"dashboard: {url}\n  Compare: two versions' neighbours of a seed side by side; "
            "Rate: judge two lists blind; Review: the ratings so far; Metrics: locality "
            "profiles and the running experiment.\nCtrl-C stops it.",
            flush=True,
        )
        code = proc.wait()
        print(f"error: the dashboard exited with code {code}; its log is above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
