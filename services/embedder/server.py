"""Runs the embedder: Triton over hearby's model repositories, until SIGTERM or SIGINT.

Triton itself is the gRPC server (inference, health, repository API); this module only
launches it with the settings' ports, repositories and start-up versions, watches it, and
stops it gracefully (Triton lets in-flight requests finish). Versions are loaded and
unloaded at run time through :mod:`services.embedder.versions`.
"""

from __future__ import annotations

import logging
import signal
import threading

from services.common.processes import ProcessFailed
from services.embedder.model_repository import list_versions
from services.embedder.settings import EmbedderSettings
from services.embedder.triton_server import TritonServer

logger = logging.getLogger(__name__)
# How often the running server is checked for an unexpected exit, in seconds.
_WATCH_SECONDS = 1.0


def build(settings: EmbedderSettings) -> TritonServer:
    """The Triton server the settings describe (not started)."""
    return TritonServer(
        [repository.resolve() for repository in settings.model_repositories],
        settings.workdir.resolve(),
        models=settings.load_versions,
        grpc_port=settings.port or None,
        host=settings.host,
        start_timeout=settings.start_timeout_seconds,
        metrics_port=settings.metrics_port or None,
        access_key=settings.access_key,
    )


def run(settings: EmbedderSettings, stop: threading.Event | None = None) -> None:
    """Starts Triton and blocks until ``stop`` is set or SIGTERM/SIGINT arrives.

    Args:
        settings: Ports, repositories, start-up versions.
        stop: Set it to stop (tests); None installs SIGTERM/SIGINT handlers instead.

    Raises:
        ProcessFailed: Triton did not start, or exited on its own while serving.
        MissingDependency: The Triton binary is not installed.
    """
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    server = build(settings)
    with server:
        held = {str(r): list_versions(r) for r in settings.model_repositories}
        logger.info(
            "embedder serving on %s (metrics :%d), repositories hold %s, loaded %s",
            server.url,
            server.metrics_port,
            held,
            list(settings.load_versions) or "none",
        )
        while not stop.wait(_WATCH_SECONDS):
            if not server.alive():
                raise ProcessFailed(f"tritonserver exited while serving:\n{server.log_tail()}")
        logger.info("embedder stopping")
