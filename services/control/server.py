"""Builds and runs the control service: the version registry over Redis, behind gRPC."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from hearby.control.v1 import control_pb2, control_pb2_grpc
from services.common.bootstrap import RunningServer, ServiceBinding, serve, start_server
from services.control.registry import LifecycleHooks, VersionRegistry
from services.control.servicer import ControlServicer
from services.control.settings import ControlSettings

logger = logging.getLogger(__name__)


def connect_redis(settings: ControlSettings) -> aioredis.Redis:
    """An async Redis client for the registry (connects lazily, on first command).

    A short retry (3 tries, backoff capped at 0.2 s) rides out a failover or a dropped
    connection; past that a call fails fast with UNAVAILABLE rather than hanging.
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        health_check_interval=30,
    )


def binding(
    registry: VersionRegistry,
    settings: ControlSettings,
    hooks: LifecycleHooks | None = None,
) -> ServiceBinding:
    """The ControlService binding for the common bootstrap."""
    return ServiceBinding(
        control_pb2.DESCRIPTOR.services_by_name["ControlService"],
        ControlServicer(registry, hooks, settings.model_repository),
        control_pb2_grpc.add_ControlServiceServicer_to_server,
    )


async def start(
    settings: ControlSettings, hooks: LifecycleHooks | None = None
) -> tuple[RunningServer, aioredis.Redis]:
    """Starts the service in this event loop (tests, embedding in ``hearby up``).

    Returns:
        The running server and its Redis client; stop the server, then ``aclose`` the client.
    """
    client = connect_redis(settings)
    registry = VersionRegistry(client, settings.key_prefix)
    running = await start_server(
        settings, [binding(registry, settings, hooks)], probes={"redis": registry.ping}
    )
    return running, client


async def run(settings: ControlSettings, hooks: LifecycleHooks | None = None) -> None:
    """Serves until SIGTERM/SIGINT, then stops gracefully and closes the Redis client."""
    client = connect_redis(settings)
    registry = VersionRegistry(client, settings.key_prefix)
    if hooks is None:
        logger.info(
            "no lifecycle hooks wired: versions are only recorded; loaders and backfill jobs "
            "follow the registry (events on %s)",
            registry.events_channel,
        )
    await serve(
        settings,
        [binding(registry, settings, hooks)],
        probes={"redis": registry.ping},
        on_shutdown=client.aclose,
    )
