"""Builds and runs the ranker: the recommender over Redis, the vector store and Triton."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hearby.ranker.v1 import ranker_pb2, ranker_pb2_grpc
from services.common import redis_client
from services.common.bootstrap import RunningServer, ServiceBinding, serve, start_server
from services.common.channels import open_channel
from services.common.health import Probe
from services.control.experiments import ExperimentStore
from services.control.registry import VersionRegistry
from services.embedder.client import EmbedderClient
from services.embedder.settings import EmbedderSettings
from services.feedback.events import EventLog
from services.ranker.recommender import Recommender
from services.ranker.routing import VersionRouter
from services.ranker.servicer import RankerServicer
from services.ranker.settings import RankerSettings
from services.vectorstore.client import VectorStoreClient

logger = logging.getLogger(__name__)


@dataclass
class Parts:
    """The ranker's servicer binding, its health probes, and how to close its clients."""

    binding: ServiceBinding
    probes: dict[str, Probe]
    close: Callable[[], Awaitable[None]]


def build(settings: RankerSettings) -> Parts:
    """Creates the clients and the servicer (every client connects lazily)."""
    redis = redis_client.connect(settings.redis_url, settings.redis_timeout_seconds)
    registry = VersionRegistry(redis, settings.control_key_prefix)
    router = VersionRouter(
        registry,
        ExperimentStore(redis, settings.control_key_prefix, registry),
        refresh_seconds=settings.routing_refresh_seconds,
        by_k=settings.by_attribute_k,
    )
    events = EventLog(redis, settings.feedback_key_prefix)
    channel = open_channel(settings.vectorstore_address)
    embedder = EmbedderClient.from_settings(EmbedderSettings())
    recommender = Recommender(
        router,
        VectorStoreClient(channel, settings.vectorstore_timeout_seconds),
        events,
        embedder,
        settings,
    )
    binding = ServiceBinding(
        ranker_pb2.DESCRIPTOR.services_by_name["RankerService"],
        RankerServicer(recommender),
        ranker_pb2_grpc.add_RankerServiceServicer_to_server,
    )
    logger.info(
        "ranker over vector store %s, embedder %s", settings.vectorstore_address, embedder.url
    )

    async def close() -> None:
        await embedder.close()
        await channel.close()
        await redis.aclose()

    # Health follows Redis: without it no version can be chosen. A vector store or
    # embedder outage fails only the calls that need it, with UNAVAILABLE.
    return Parts(binding, {"redis": registry.ping}, close)


async def start(settings: RankerSettings) -> tuple[RunningServer, Callable[[], Awaitable[None]]]:
    """Starts the ranker in this event loop (tests); returns the server and its closer."""
    parts = build(settings)
    running = await start_server(settings, [parts.binding], parts.probes)
    return running, parts.close


async def run(settings: RankerSettings) -> None:
    """Serves until SIGTERM/SIGINT, then stops gracefully and closes its clients."""
    parts = build(settings)
    await serve(settings, [parts.binding], parts.probes, on_shutdown=parts.close)
