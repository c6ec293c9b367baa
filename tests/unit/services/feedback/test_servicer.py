"""FeedbackService over gRPC (in-process server, real Redis): protos and status codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hearby.feedback.v1 import feedback_pb2 as pb
from hearby.feedback.v1 import feedback_pb2_grpc
from hearby.ranker.v1 import ranker_pb2
from services.common.errors import InvalidArgument
from services.feedback import server
from services.feedback.events import EventType, UserEvent
from services.feedback.ratings import check_rating
from services.feedback.servicer import (
    event_to_proto,
    events_from_proto,
    rating_from_proto,
    rating_to_proto,
)
from services.feedback.settings import FeedbackSettings
from tests.unit.services.feedback.support import rating

Code = grpc.StatusCode


@pytest.fixture
async def channel(redis_server, redis_client) -> AsyncIterator[grpc.aio.Channel]:
    settings = FeedbackSettings(port=0, metrics_port=0, redis_url=redis_server.url)
    running, client = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel
    finally:
        await running.stop(0.5)
        await client.aclose()


@pytest.fixture
def stub(channel) -> feedback_pb2_grpc.FeedbackServiceStub:
    return feedback_pb2_grpc.FeedbackServiceStub(channel)


async def _code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return failure.value.code(), failure.value.details()


def test_events_convert_to_proto_and_back():
    event = UserEvent(
        "u1", "t1", EventType.SKIP, 3.5, "req", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "e1"
    )
    assert events_from_proto([event_to_proto(event)]) == [event]
    # An unset time stays unset (the log fills in "now").
    untimed = UserEvent("u1", "t1", EventType.PLAY)
    assert events_from_proto([event_to_proto(untimed)]) == [untimed]


def test_events_from_proto_reject_an_unspecified_type_naming_the_index():
    messages = [pb.UserEvent(user_id="u", track_id="t", type=ranker_pb2.EVENT_TYPE_PLAY)] * 2
    messages.append(pb.UserEvent(user_id="u", track_id="t"))
    with pytest.raises(InvalidArgument, match=r"events\[2\]\.type 0 is not one of EVENT_TYPE_"):
        events_from_proto(messages)


def test_ratings_convert_to_proto_and_back():
    original = check_rating(rating())
    assert rating_from_proto(rating_to_proto(original)) == original


def test_rating_from_proto_rejects_an_unspecified_preference_and_an_unknown_side():
    message = rating_to_proto(check_rating(rating()))
    message.preference = pb.PREFERENCE_UNSPECIFIED
    with pytest.raises(InvalidArgument, match="PREFERENCE_UNSPECIFIED is not set: choose"):
        rating_from_proto(message)
    message = rating_to_proto(check_rating(rating()))
    message.neighbour_scores[1].side = "middle"
    with pytest.raises(InvalidArgument, match=r"neighbour_scores\[1\]\.side must be 'left'"):
        rating_from_proto(message)


async def test_the_server_reports_serving_while_redis_answers(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "hearby.feedback.v1.FeedbackService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_record_events_counts_new_events_and_rejects_a_bad_batch(stub):
    play = ranker_pb2.EVENT_TYPE_PLAY
    events = [
        pb.UserEvent(user_id="u1", track_id=f"t{i}", type=play, event_id=f"e{i}") for i in range(3)
    ]
    reply = await stub.RecordEvents(pb.RecordEventsRequest(events=events))
    assert reply.recorded == 3
    reply = await stub.RecordEvents(pb.RecordEventsRequest(events=events))
    assert reply.recorded == 0

    bad = [*events, pb.UserEvent(user_id="", track_id="t9", type=play)]
    code, details = await _code_of(stub.RecordEvents(pb.RecordEventsRequest(events=bad)))
    assert code is Code.INVALID_ARGUMENT and details.startswith("events[3].user_id")


async def test_submit_rating_is_idempotent_and_list_ratings_filters(stub):
    first = rating_to_proto(check_rating(rating("r1")))
    reply = await stub.SubmitRating(pb.SubmitRatingRequest(rating=first))
    assert (reply.rating_id, reply.created) == ("r1", True)
    reply = await stub.SubmitRating(pb.SubmitRatingRequest(rating=first))
    assert reply.created is False
    other = rating_to_proto(check_rating(rating("r2", ("v1", "v3"), minutes=1)))
    await stub.SubmitRating(pb.SubmitRatingRequest(rating=other))

    listed = await stub.ListRatings(pb.ListRatingsRequest())
    assert [r.rating_id for r in listed.ratings] == ["r1", "r2"]
    assert listed.ratings[0] == first
    listed = await stub.ListRatings(pb.ListRatingsRequest(version_a="v3", version_b="v1"))
    assert [r.rating_id for r in listed.ratings] == ["r2"]


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (pb.SubmitRatingRequest(), "rating is missing"),
        (
            pb.SubmitRatingRequest(rating=pb.SimilarityRating(rating_id="r1")),
            "rating.preference PREFERENCE_UNSPECIFIED is not set",
        ),
    ],
)
async def test_submit_rating_rejects_a_missing_or_incomplete_rating(stub, request_, problem):
    code, details = await _code_of(stub.SubmitRating(request_))
    assert code is Code.INVALID_ARGUMENT and problem in details


async def test_list_ratings_rejects_a_single_version(stub):
    code, details = await _code_of(stub.ListRatings(pb.ListRatingsRequest(version_a="v1")))
    assert code is Code.INVALID_ARGUMENT and "give both" in details
