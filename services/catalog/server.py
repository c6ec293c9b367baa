"""Builds and runs the catalog service: tracks in Redis, audio in the store, behind gRPC."""

from __future__ import annotations

import logging

import grpc
import redis.asyncio as aioredis

from hearby.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.audio_store import AudioStore
from services.catalog.servicer import CatalogServicer
from services.catalog.settings import CatalogSettings, QueueSettings
from services.catalog.tracks import ActiveVersions, Catalog, CatalogKeys, RegistryVersions
from services.common import redis_client
from services.common.audio import AudioLimits
from services.common.bootstrap import RunningServer, ServiceBinding, serve, start_server
from services.common.channels import open_channel
from services.common.health import Probe
from services.control.client import ControlClient

logger = logging.getLogger(__name__)


def connect_redis(settings: QueueSettings, extra_read_seconds: float = 0.0) -> aioredis.Redis:
    """An async Redis client for the catalog's keys (see ``services.common.redis_client``).

    Args:
        settings: Redis URL and timeout.
        extra_read_seconds: Added to the read timeout, for blocking reads (XREADGROUP
            BLOCK) that legitimately wait that long for a reply.
    """
    return redis_client.connect(
        settings.redis_url, settings.redis_timeout_seconds, extra_read_seconds
    )


def catalog_keys(settings: QueueSettings) -> CatalogKeys:
    """The Redis key names the settings describe."""
    return CatalogKeys(settings.key_prefix, settings.ingest_group)


def build_catalog(
    settings: CatalogSettings, client: aioredis.Redis, versions: ActiveVersions
) -> Catalog:
    """The catalog domain object from settings."""
    limits = AudioLimits(
        max_bytes=settings.max_audio_bytes,
        min_seconds=settings.min_audio_seconds,
        max_seconds=settings.max_audio_seconds,
        silence_dbfs=settings.silence_dbfs,
    )
    return Catalog(
        client,
        AudioStore(settings.audio_store),
        versions,
        keys=catalog_keys(settings),
        limits=limits,
        uri_prefixes=settings.uri_prefixes,
    )


def binding(catalog: Catalog) -> ServiceBinding:
    """The CatalogService binding for the common bootstrap."""
    return ServiceBinding(
        catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"],
        CatalogServicer(catalog),
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server,
    )


async def _prepare(
    settings: CatalogSettings, versions: ActiveVersions
) -> tuple[aioredis.Redis, Catalog]:
    client = connect_redis(settings)
    catalog = build_catalog(settings, client, versions)
    # Best effort: a Redis that is down now must not stop the server from starting (it
    # reports NOT_SERVING until Redis is back); the workers create the group too.
    try:
        await catalog.ensure_group()
    except Exception as exc:  # noqa: BLE001 - logged; the health probes report the outage
        logger.warning("could not create the ingest consumer group yet: %s", exc)
    return client, catalog


def _probes(catalog: Catalog) -> dict[str, Probe]:
    return {"redis": catalog.ping, "audio_store": catalog.check_store}


async def start(
    settings: CatalogSettings, versions: ActiveVersions
) -> tuple[RunningServer, aioredis.Redis]:
    """Starts the service in this event loop (tests, embedding in ``hearby up``).

    Returns:
        The running server and its Redis client; stop the server, then ``aclose`` the client.
    """
    client, catalog = await _prepare(settings, versions)
    running = await start_server(settings, [binding(catalog)], probes=_probes(catalog))
    return running, client


async def run(settings: CatalogSettings, versions: ActiveVersions | None = None) -> None:
    """Serves until SIGTERM/SIGINT, then stops gracefully and closes its clients.

    Args:
        settings: The service's settings.
        versions: The active versions; default: the control service's registry at
            ``settings.control_address``.
    """
    channel: grpc.aio.Channel | None = None
    if versions is None:
        channel = open_channel(settings.control_address)
        versions = RegistryVersions(ControlClient(channel, settings.rpc_timeout_seconds))
    client, catalog = await _prepare(settings, versions)

    async def close() -> None:
        await client.aclose()
        if channel is not None:
            await channel.close()

    await serve(settings, [binding(catalog)], probes=_probes(catalog), on_shutdown=close)
