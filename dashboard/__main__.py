"""``python -m dashboard``: serves the Streamlit dashboard until SIGTERM or Ctrl-C.

Reads :class:`~dashboard.settings.DashboardSettings` (``HEARBY_DASHBOARD_*`` and the shared
service addresses), logs where it listens and which services it talks to, then replaces
itself with ``streamlit run dashboard/app.py`` and Streamlit's options taken from those
settings. Replacing (not wrapping) the process means a supervisor's SIGTERM reaches
Streamlit itself, which then shuts its server down cleanly.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from dashboard.settings import DashboardSettings
from services.common.logging import configure_logging

logger = logging.getLogger(__name__)

# Resolved from the package, so the dashboard starts from any working directory.
APP = Path(__file__).resolve().parent / "app.py"


def streamlit_argv(settings: DashboardSettings) -> list[str]:
    """The ``streamlit run`` command line that serves the app with these settings.

    Headless (no browser opened, no e-mail prompt), no usage statistics sent anywhere,
    no file watcher (a served dashboard never reloads on edits, and watching the checkout
    costs CPU and inotify handles for nothing), and a minimal toolbar: a user of the
    dashboard has no use for Streamlit's "Deploy" button or developer menu.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        settings.host,
        "--server.port",
        str(settings.port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        str(settings.max_upload_mib),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def main() -> None:
    """Reads the settings, logs them and execs Streamlit."""
    settings = DashboardSettings()
    configure_logging("INFO", "text")
    logger.info(
        "dashboard on http://%s:%d/ (control %s, vectorstore %s, ranker %s, catalog %s, "
        "feedback %s)",
        settings.host,
        settings.port,
        settings.control_address,
        settings.vectorstore_address,
        settings.ranker_address,
        settings.catalog_address,
        settings.feedback_address,
    )
    argv = streamlit_argv(settings)
    # exec replaces the process without flushing Python's buffers.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
