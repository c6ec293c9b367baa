"""Builds and runs the feedback service: the event log and rating store over Redis, behind gRPC."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from hearby.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from services.common import redis_client
from services.common.bootstrap import RunningServer, ServiceBinding, serve, start_server
from services.feedback.events import EventLog
from services.feedback.ratings import RatingStore
from services.feedback.servicer import FeedbackServicer
from services.feedback.settings import FeedbackSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stores:
    """The service's Redis client and the stores over it.

    Args:
        redis: The client; close it after the server stopped.
        events: The event log.
        ratings: The rating store.
    """

    redis: aioredis.Redis
    events: EventLog
    ratings: RatingStore


def connect(settings: FeedbackSettings) -> Stores:
    """The stores over a new Redis client (it connects lazily, on the first command)."""
    client = redis_client.connect(settings.redis_url, settings.redis_timeout_seconds)
    events = EventLog(
        client,
        settings.key_prefix,
        history_length=settings.history_length,
        impression_ttl_seconds=settings.impression_ttl_seconds,
        event_dedupe_ttl_seconds=settings.event_dedupe_ttl_seconds,
        events_max_length=settings.events_max_length,
    )
    return Stores(client, events, RatingStore(client, settings.key_prefix))


def binding(stores: Stores) -> ServiceBinding:
    """The FeedbackService binding for the common bootstrap."""
    return ServiceBinding(
        feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"],
        FeedbackServicer(stores.events, stores.ratings),
        feedback_pb2_grpc.add_FeedbackServiceServicer_to_server,
    )


async def start(settings: FeedbackSettings) -> tuple[RunningServer, aioredis.Redis]:
    """Starts the service in this event loop (tests, embedding in other processes).

    Returns:
        The running server and its Redis client; stop the server, then ``aclose`` the client.
    """
    stores = connect(settings)
    running = await start_server(settings, [binding(stores)], probes={"redis": stores.events.ping})
    return running, stores.redis


async def run(settings: FeedbackSettings) -> None:
    """Serves until SIGTERM/SIGINT, then stops gracefully and closes the Redis client."""
    stores = connect(settings)
    logger.info(
        "feedback keys under %s (history %d events per user, impressions live %d s)",
        settings.key_prefix,
        settings.history_length,
        settings.impression_ttl_seconds,
    )
    await serve(
        settings,
        [binding(stores)],
        probes={"redis": stores.events.ping},
        on_shutdown=stores.redis.aclose,
    )
