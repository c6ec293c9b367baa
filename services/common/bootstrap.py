"""Builds, starts and stops a hearby gRPC server; every service's ``server.py`` calls this.

A server gets: the service's servicers, the standard health service (``grpc.health.v1``),
server reflection, the :class:`~services.common.interceptors.ServiceInterceptor` (status
codes, metrics, logs), message size limits, the Prometheus endpoint, and a graceful stop
on SIGTERM/SIGINT (NOT_SERVING first, then in-flight calls get ``grace_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.health import SERVING, HealthReporter, Probe
from services.common.interceptors import ServiceInterceptor
from services.common.metrics import start_metrics_server
from services.common.settings_base import ServiceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer and how to register it.

    Args:
        descriptor: The proto service descriptor (names the service for health/reflection).
        servicer: The servicer instance.
        add_to_server: The generated ``add_<Name>Servicer_to_server`` function.
    """

    descriptor: ServiceDescriptor
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]

    @property
    def name(self) -> str:
        """Fully qualified service name, e.g. ``hearby.ranker.v1.RankerService``."""
        return self.descriptor.full_name


@dataclass
class RunningServer:
    """A started server and its parts."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    metrics_port: int | None = None
    _metrics_http: Any = field(default=None, repr=False)

    async def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, then stops, giving in-flight calls ``grace_seconds``."""
        await self.health.stop()
        await self.server.stop(grace_seconds)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        logger.info("server on port %d stopped", self.port)


async def start_server(
    settings: ServiceSettings,
    bindings: Sequence[ServiceBinding],
    probes: Mapping[str, Probe] | None = None,
) -> RunningServer:
    """Builds and starts a server; returns once it accepts calls.

    Args:
        settings: Host, port, limits and metrics port.
        bindings: The service's servicers.
        probes: Dependency checks that decide SERVING vs NOT_SERVING (see health.py).

    Returns:
        The running server; ``port`` is the bound port (useful when settings.port is 0).

    Raises:
        RuntimeError: The port could not be bound (e.g. already in use).
    """
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    server = grpc.aio.server(interceptors=[ServiceInterceptor()], options=limits)
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.name for b in bindings]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{settings.host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc} (is the port in use?)") from exc
    await server.start()
    reporter = HealthReporter(health_servicer, names, probes)
    if probes:
        await reporter.check_once()
    else:
        await reporter.set_all(SERVING)
    reporter.start()
    metrics = start_metrics_server(settings.metrics_port, settings.host)
    logger.info("serving %s on %s:%d", ", ".join(names), settings.host, port)
    return RunningServer(
        server=server,
        port=port,
        health=reporter,
        metrics_port=metrics[1] if metrics else None,
        _metrics_http=metrics[0] if metrics else None,
    )


async def serve(
    settings: ServiceSettings,
    bindings: Sequence[ServiceBinding],
    probes: Mapping[str, Probe] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Runs a server until SIGTERM or SIGINT, then shuts down gracefully.

    Args:
        settings: Server settings.
        bindings: The service's servicers.
        probes: Dependency checks for health.
        on_shutdown: Called after the server stopped (close clients, flush buffers).
    """
    running = await start_server(settings, bindings, probes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down (grace %.1f s)", settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    if on_shutdown is not None:
        await on_shutdown()
