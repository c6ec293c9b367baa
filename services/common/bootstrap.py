"""Builds, starts and stops a hearby gRPC server; every service's ``server.py`` calls this.

A server gets: the service's servicers, the standard health service (``grpc.health.v1``),
server reflection, the :class:`~services.common.interceptors.ServiceInterceptor` (API keys
and rate limits, status codes, metrics, logs), TLS or mTLS when configured
(:class:`~services.common.settings_base.SecuritySettings`), message size limits, the
Prometheus endpoint, and a graceful stop on SIGTERM/SIGINT (NOT_SERVING first, then
in-flight calls get ``grace_seconds``).
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

from services.common.access import AccessControl
from services.common.health import NOT_SERVING, SERVING, HealthReporter, Probe
from services.common.interceptors import ServiceInterceptor
from services.common.metrics import start_metrics_server
from services.common.settings_base import SecuritySettings, ServiceSettings

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
    health_port: int | None = None
    _metrics_http: Any = field(default=None, repr=False)
    _health_server: grpc.aio.Server | None = field(default=None, repr=False)

    async def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, then stops, giving in-flight calls ``grace_seconds``."""
        await self.health.stop()
        await self.server.stop(grace_seconds)
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        logger.info("server on port %d stopped", self.port)


def server_credentials(security: SecuritySettings) -> grpc.ServerCredentials | None:
    """TLS credentials for the server port, or None for plaintext.

    Raises:
        FileNotFoundError: A configured certificate, key or CA file is missing.
    """
    if not security.server_tls:
        return None
    assert security.tls_cert_file is not None and security.tls_key_file is not None
    cert = security.tls_cert_file.read_bytes()
    key = security.tls_key_file.read_bytes()
    ca = None
    if security.tls_mutual:
        if security.tls_ca_file is None:
            raise FileNotFoundError("HEARBY_TLS_MUTUAL needs HEARBY_TLS_CA_FILE (the client CA)")
        ca = security.tls_ca_file.read_bytes()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=security.tls_mutual
    )


async def start_server(
    settings: ServiceSettings,
    bindings: Sequence[ServiceBinding],
    probes: Mapping[str, Probe] | None = None,
    security: SecuritySettings | None = None,
) -> RunningServer:
    """Builds and starts a server; returns once it accepts calls.

    Args:
        settings: Host, port, limits and metrics port.
        bindings: The service's servicers.
        probes: Dependency checks that decide SERVING vs NOT_SERVING (see health.py).
        security: Keys, rate limits and TLS (default: from the ``HEARBY_*`` environment).

    Returns:
        The running server; ``port`` is the bound port (useful when settings.port is 0).

    Raises:
        RuntimeError: The port could not be bound (e.g. already in use).
        FileNotFoundError: Authentication is on without a key file, or a TLS file is
            missing.
    """
    security = security or SecuritySettings()
    access = AccessControl.from_settings(security)
    credentials = server_credentials(security)
    limits = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    server = grpc.aio.server(interceptors=[ServiceInterceptor(access)], options=limits)
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
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc} (is the port in use?)") from exc
    reporter = HealthReporter(health_servicer, names, probes)
    # grpc's health servicer starts out SERVING for "": until the first probe round has
    # run, a caller (a readiness probe, a test) would be told SERVING with Milvus or Redis
    # unreachable. Start NOT_SERVING instead.
    await reporter.set_all(NOT_SERVING)
    await server.start()
    health_server, health_port = await _start_health_port(settings, health_servicer)
    if probes:
        await reporter.check_once()
    else:
        await reporter.set_all(SERVING)
    reporter.start()
    metrics = start_metrics_server(settings.metrics_port, settings.host)
    logger.info(
        "serving %s on %s:%d (%s, %s)",
        ", ".join(names),
        settings.host,
        port,
        ("mTLS" if security.tls_mutual else "TLS") if credentials else "plaintext",
        f"API keys from {security.auth_keys_file}" if access.keys else "no authentication",
    )
    return RunningServer(
        server=server,
        port=port,
        health=reporter,
        metrics_port=metrics[1] if metrics else None,
        health_port=health_port,
        _metrics_http=metrics[0] if metrics else None,
        _health_server=health_server,
    )


async def _start_health_port(
    settings: ServiceSettings, servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server | None, int | None]:
    """A plaintext server with only the health service, when ``health_port`` is set.

    Kubernetes' native gRPC probes cannot speak TLS, so with TLS on the kubelet probes
    this port instead. It shares the main server's health servicer: both report the same
    status, and nothing but ``grpc.health.v1`` is reachable here.
    """
    if settings.health_port is None:
        return None, None
    return await _health_only_server(settings.host, settings.health_port, servicer)


async def _health_only_server(
    host: str, port: int, servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address} (health): {exc}") from exc
    await server.start()
    return server, bound


@dataclass
class HealthServer:
    """A started health-only server (processes that serve no RPCs, e.g. ingest workers)."""

    server: grpc.aio.Server
    port: int
    reporter: HealthReporter

    async def stop(self) -> None:
        """Reports NOT_SERVING and stops."""
        await self.reporter.stop()
        await self.server.stop(0)


async def start_health_server(
    host: str, port: int, probes: Mapping[str, Probe], interval_seconds: float = 2.0
) -> HealthServer:
    """Serves ``grpc.health.v1`` alone, its status following ``probes``.

    Args:
        host: Interface to bind.
        port: Port; 0 picks a free one.
        probes: Checks that decide SERVING vs NOT_SERVING (see health.py).
        interval_seconds: Time between probe rounds.

    Raises:
        RuntimeError: The port could not be bound.
    """
    servicer = health.aio.HealthServicer()
    reporter = HealthReporter(servicer, [], probes, interval_seconds=interval_seconds)
    await reporter.set_all(NOT_SERVING)  # until the first probe round (see start_server)
    server, bound = await _health_only_server(host, port, servicer)
    await reporter.check_once()
    reporter.start()
    logger.info("health on %s:%d", host, bound)
    return HealthServer(server, bound, reporter)


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
