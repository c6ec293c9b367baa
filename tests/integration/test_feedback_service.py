"""The feedback service as users run it: ``python -m services.feedback`` over a real Redis.

Each test starts its own redis-server (so stopping it never touches the session's shared
one) and the service as a subprocess on free ports, then drives it through the public
client: events and ratings, status codes, a Redis outage and recovery, and ratings that
survive a restart of both the service and Redis (the AOF).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from services.common.errors import InvalidArgument, Unavailable
from services.common.processes import ManagedProcess, free_port
from services.common.redis_server import RedisServer
from services.feedback.client import FeedbackClient
from services.feedback.events import EventType, UserEvent
from services.feedback.ratings import NeighbourScore, Rating, Side, check_rating
from tests.support.health import health_status, wait_for_health
from tests.unit.services.feedback.support import rating

pytestmark = pytest.mark.slow
SERVICE = "hearby.feedback.v1.FeedbackService"


def _health(address: str) -> int | None:
    return health_status(address, SERVICE)


def _wait_for_health(address: str, status: int, timeout: float = 20.0) -> None:
    wait_for_health(address, SERVICE, status, timeout)


def _service(tmp_path: Path, port: int, redis_url: str) -> ManagedProcess:
    address = f"127.0.0.1:{port}"
    return ManagedProcess(
        "feedback",
        [sys.executable, "-m", "services.feedback"],
        tmp_path / "feedback.log",
        ready=lambda: _health(address) == health_pb2.HealthCheckResponse.SERVING,
        env={
            "HEARBY_FEEDBACK_PORT": str(port),
            "HEARBY_FEEDBACK_REDIS_URL": redis_url,
            "HEARBY_FEEDBACK_LOG_FORMAT": "text",
        },
        start_timeout=60,
    )


@dataclass
class Stack:
    """A redis-server and the feedback service using it."""

    redis: RedisServer
    redis_dir: Path
    service: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, method: str, *args: object) -> object:
        """Calls one FeedbackClient method with a fresh channel (blocking)."""

        async def run() -> object:
            async with grpc.aio.insecure_channel(self.address) as channel:
                return await getattr(FeedbackClient(channel, 10.0), method)(*args)

        return asyncio.run(run())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    redis_dir = tmp_path / "redis"
    port = free_port()
    with (
        RedisServer(redis_dir) as redis_server,
        _service(tmp_path, port, redis_server.url) as service,
    ):
        yield Stack(redis_server, redis_dir, service, port)


def _events() -> list[UserEvent]:
    return [
        UserEvent("u1", "t1", EventType.PLAY, event_id="e1"),
        UserEvent("u1", "t1", EventType.COMPLETE, 180.0, event_id="e2"),
        UserEvent("u2", "t2", EventType.LIKE, event_id="e3"),
    ]


def test_events_are_recorded_once_and_a_bad_batch_is_refused_whole(stack):
    assert stack.call("record_events", _events()) == 3
    # A client retrying after a lost reply: nothing counts twice.
    assert stack.call("record_events", _events()) == 0
    bad = [
        UserEvent("u3", "t3", EventType.PLAY, event_id="e4"),
        UserEvent("u3", "t 4", EventType.PLAY),
    ]
    with pytest.raises(InvalidArgument, match=r"events\[1\]\.track_id 't 4'"):
        stack.call("record_events", bad)
    # Nothing of the refused batch was stored: e4 is still new.
    assert stack.call("record_events", bad[:1]) == 1


def test_ratings_are_idempotent_and_listed_by_version_pair(stack):
    assert stack.call("submit_rating", rating("r1")) is True
    assert stack.call("submit_rating", rating("r1")) is False
    assert stack.call("submit_rating", rating("r2", ("v3", "v1"), minutes=1)) is True
    # Refused by the service (INVALID_ARGUMENT), not by the client.
    bad_score = (NeighbourScore("a1", Side.LEFT, 9),)
    with pytest.raises(InvalidArgument, match=r"neighbour_scores\[0\]\.score .* got 9"):
        stack.call("submit_rating", rating("r3", neighbour_scores=bad_score))
    listed = stack.call("list_ratings", "v1", "v3")
    assert [r.rating_id for r in listed] == ["r2"]
    assert [r.rating_id for r in stack.call("list_ratings")] == ["r1", "r2"]


def test_a_redis_outage_makes_calls_unavailable_until_it_is_back(stack):
    stack.call("submit_rating", rating("r1"))
    stack.redis.stop()
    _wait_for_health(stack.address, health_pb2.HealthCheckResponse.NOT_SERVING)
    with pytest.raises(Unavailable, match=r"feedback Redis at 127\.0\.0\.1.*retry later"):
        stack.call("record_events", _events())
    with pytest.raises(Unavailable):
        stack.call("submit_rating", rating("r2"))

    # Same port and data dir: the service reconnects by itself.
    restarted = RedisServer(stack.redis_dir, port=stack.redis.port)
    restarted.start()
    try:
        _wait_for_health(stack.address, health_pb2.HealthCheckResponse.SERVING)
        # The retry of the refused calls now goes through.
        assert stack.call("record_events", _events()) == 3
        assert stack.call("submit_rating", rating("r2")) is True
    finally:
        restarted.stop()


def test_ratings_survive_a_restart_of_the_service_and_redis(stack, tmp_path):
    submitted: list[Rating] = [rating(f"r{i}", minutes=i) for i in range(3)]
    for one in submitted:
        assert stack.call("submit_rating", one) is True
    stack.service.stop(timeout=15)
    assert stack.service.proc is not None and stack.service.proc.returncode == 0
    assert "shutting down" in stack.service.log_tail()
    # A clean stop: redis-server writes its AOF out before it exits.
    stack.redis.stop()

    port = free_port()
    with (
        RedisServer(stack.redis_dir, port=stack.redis.port) as restarted,
        _service(tmp_path / "again", port, restarted.url) as service,
    ):
        listed = Stack(restarted, stack.redis_dir, service, port).call("list_ratings")
    assert listed == [check_rating(r) for r in submitted]
