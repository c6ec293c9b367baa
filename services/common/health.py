"""Health reporting on the standard ``grpc.health.v1`` service.

Each service's status follows its dependencies: a :class:`HealthReporter` runs the
service's probes (Redis ping, Milvus list, Triton ready, ...) every few seconds and flips
the served status between SERVING and NOT_SERVING, so Kubernetes probes and
``grpc_health_probe`` see a dependency outage without a request failing first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from grpc_health.v1 import health, health_pb2

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]
"""An async check that returns when the dependency is usable and raises when it is not."""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    """Publishes the status of a set of services on a health servicer.

    Args:
        servicer: The standard async health servicer registered on the server.
        services: Fully qualified service names; the overall status ("") follows them.
        probes: Named dependency checks; all must pass for SERVING.
        interval_seconds: Time between probe rounds.
        probe_timeout_seconds: A probe slower than this counts as failed.
    """

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        probes: Mapping[str, Probe] | None = None,
        interval_seconds: float = 2.0,
        probe_timeout_seconds: float = 2.0,
    ) -> None:
        self._servicer = servicer
        self._services = ["", *services]
        self._probes = dict(probes or {})
        self._interval = interval_seconds
        self._timeout = probe_timeout_seconds
        self._task: asyncio.Task[None] | None = None
        self._failing: dict[str, str] = {}

    async def set_all(self, status: int) -> None:
        """Sets every service (and the overall status) to ``status``."""
        for name in self._services:
            await self._servicer.set(name, status)

    async def check_once(self) -> dict[str, str]:
        """Runs every probe once and publishes the result.

        Returns:
            Failing probe name -> reason; empty when all pass.
        """
        failing: dict[str, str] = {}
        for name, probe in self._probes.items():
            try:
                await asyncio.wait_for(probe(), self._timeout)
            except Exception as exc:  # noqa: BLE001 - any failure means "not serving"
                failing[name] = f"{type(exc).__name__}: {exc}"
        if failing != self._failing:
            if failing:
                logger.warning("dependencies failing, NOT_SERVING: %s", failing)
            else:
                logger.info("all dependencies healthy, SERVING")
        self._failing = failing
        await self.set_all(NOT_SERVING if failing else SERVING)
        return failing

    def start(self) -> None:
        """Starts probing in the background (a no-op without probes)."""
        if self._probes and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="health-probes")

    async def stop(self) -> None:
        """Stops probing and reports NOT_SERVING (used at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.set_all(NOT_SERVING)

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)
