"""FeedbackClient and its smoke CLI against the service started by server.start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from services.common.errors import InvalidArgument
from services.feedback import server
from services.feedback.client import FeedbackClient
from services.feedback.client import main as client_main
from services.feedback.events import EventType, UserEvent
from services.feedback.ratings import NeighbourScore, Side, check_rating
from services.feedback.settings import FeedbackSettings
from tests.unit.services.feedback.support import rating


@pytest.fixture
async def running(redis_server, redis_client) -> AsyncIterator[str]:
    """The service's address."""
    settings = FeedbackSettings(port=0, metrics_port=0, redis_url=redis_server.url)
    started, client = await server.start(settings)
    try:
        yield f"127.0.0.1:{started.port}"
    finally:
        await started.stop(0.5)
        await client.aclose()


@pytest.fixture
async def feedback(running) -> AsyncIterator[FeedbackClient]:
    async with grpc.aio.insecure_channel(running) as channel:
        yield FeedbackClient(channel)


async def test_client_records_events_and_raises_invalid_argument_for_a_bad_one(feedback):
    events = [UserEvent("u1", "t1", EventType.LIKE, event_id="e1")]
    assert await feedback.record_events(events) == 1
    assert await feedback.record_events(events) == 0
    with pytest.raises(InvalidArgument, match=r"events\[0\]\.track_id"):
        await feedback.record_events([UserEvent("u1", "", EventType.PLAY)])


async def test_client_submits_and_lists_ratings_as_domain_objects(feedback):
    assert await feedback.submit_rating(rating("r1")) is True
    assert await feedback.submit_rating(rating("r1")) is False
    assert await feedback.list_ratings() == [check_rating(rating("r1"))]
    assert await feedback.list_ratings("v1", "v9") == []
    with pytest.raises(InvalidArgument, match=r"neighbour_scores\[0\]\.score"):
        await feedback.submit_rating(
            rating("r2", neighbour_scores=(NeighbourScore("a1", Side.LEFT, 9),))
        )


async def test_the_smoke_cli_records_an_event_and_lists_ratings(running, feedback, capsys):
    await feedback.submit_rating(rating("r1"))
    # main() runs its own event loop: run it in a thread, not inside this one.
    argv = ["--address", running, "events", "u1", "t1", "--type", "like", "--event-id", "x"]
    assert await asyncio.to_thread(client_main, argv) == 0
    assert await asyncio.to_thread(client_main, ["--address", running, "ratings"]) == 0
    argv = ["--address", running, "ratings", "--versions", "v1", "v1"]
    assert await asyncio.to_thread(client_main, argv) == 1
    out, err = capsys.readouterr()
    assert "recorded 1" in out
    assert "r1" in out and "v1 vs v2: left (2 scores)" in out
    assert "error (INVALID_ARGUMENT)" in err
