"""``FeedbackService``: converts between protos and the event log / rating store, nothing else.

Domain errors become status codes in the common interceptor
(``services/common/interceptors.py``). The conversions live here as module-level
functions; ``client.py`` uses them in the other direction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hearby.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from hearby.ranker.v1 import ranker_pb2
from services.common.errors import InvalidArgument
from services.feedback.events import MAX_EVENTS, EventLog, EventType, UserEvent
from services.feedback.ratings import (
    NeighbourScore,
    Preference,
    Rating,
    RatingStore,
    ShownList,
    parse_preference,
    parse_side,
)

logger = logging.getLogger(__name__)

_EVENT_TO_PROTO = {
    EventType.PLAY: ranker_pb2.EVENT_TYPE_PLAY,
    EventType.SKIP: ranker_pb2.EVENT_TYPE_SKIP,
    EventType.LIKE: ranker_pb2.EVENT_TYPE_LIKE,
    EventType.DISLIKE: ranker_pb2.EVENT_TYPE_DISLIKE,
    EventType.COMPLETE: ranker_pb2.EVENT_TYPE_COMPLETE,
}
_EVENT_FROM_PROTO = {value: key for key, value in _EVENT_TO_PROTO.items()}
_PREFERENCE_TO_PROTO = {
    Preference.LEFT: feedback_pb2.PREFERENCE_LEFT,
    Preference.RIGHT: feedback_pb2.PREFERENCE_RIGHT,
    Preference.TIE: feedback_pb2.PREFERENCE_TIE,
}
_PREFERENCE_FROM_PROTO = {value: key for key, value in _PREFERENCE_TO_PROTO.items()}


def event_type_to_proto(kind: EventType) -> int:
    """The ``hearby.ranker.v1.EventType`` value of a domain event type."""
    return _EVENT_TO_PROTO[kind]


def event_type_from_proto(value: int, what: str = "type") -> EventType:
    """The domain event type of a proto ``EventType`` (shared by RecordEvents and Session).

    Raises:
        InvalidArgument: UNSPECIFIED or unknown; the message names ``what`` and lists the
            allowed values.
    """
    kind = _EVENT_FROM_PROTO.get(value)
    if kind is None:
        allowed = ", ".join(ranker_pb2.EventType.Name(v) for v in _EVENT_FROM_PROTO)
        raise InvalidArgument(f"{what} {value} is not one of {allowed}")
    return kind


def _timestamp(time: dt.datetime | None) -> Timestamp | None:
    if time is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(time)
    return stamp


def event_to_proto(event: UserEvent) -> feedback_pb2.UserEvent:
    """The proto ``UserEvent`` of a domain event (an unset time stays unset).

    An unknown type becomes UNSPECIFIED, which the service refuses with INVALID_ARGUMENT.
    """
    return feedback_pb2.UserEvent(
        user_id=event.user_id,
        track_id=event.track_id,
        type=_EVENT_TO_PROTO.get(event.type, ranker_pb2.EVENT_TYPE_UNSPECIFIED),
        position_seconds=event.position_seconds,
        request_id=event.request_id,
        time=_timestamp(event.time),
        event_id=event.event_id,
    )


def events_from_proto(messages: Sequence[feedback_pb2.UserEvent]) -> list[UserEvent]:
    """Domain events of proto events (validated later, by :meth:`EventLog.record`).

    Raises:
        InvalidArgument: More than 1000 events, or an event's type is UNSPECIFIED or
            unknown (the message names its index).
    """
    if len(messages) > MAX_EVENTS:
        raise InvalidArgument(f"at most {MAX_EVENTS} events per call, got {len(messages)}")
    events = []
    for i, message in enumerate(messages):
        kind = event_type_from_proto(message.type, f"events[{i}].type")
        events.append(
            UserEvent(
                user_id=message.user_id,
                track_id=message.track_id,
                type=kind,
                position_seconds=message.position_seconds,
                request_id=message.request_id,
                time=message.time.ToDatetime(tzinfo=dt.UTC) if message.HasField("time") else None,
                event_id=message.event_id,
            )
        )
    return events


def rating_to_proto(rating: Rating) -> feedback_pb2.SimilarityRating:
    """The proto ``SimilarityRating`` of a domain rating.

    Raises:
        InvalidArgument: Its preference is not left, right or tie.
    """
    return feedback_pb2.SimilarityRating(
        rating_id=rating.rating_id,
        rater_id=rating.rater_id,
        trial_id=rating.trial_id,
        seed_track_id=rating.seed_track_id,
        left=feedback_pb2.ShownList(
            version=rating.left.version, track_ids=list(rating.left.track_ids)
        ),
        right=feedback_pb2.ShownList(
            version=rating.right.version, track_ids=list(rating.right.track_ids)
        ),
        preference=_PREFERENCE_TO_PROTO[parse_preference(rating.preference)],
        neighbour_scores=[
            feedback_pb2.NeighbourScore(track_id=s.track_id, side=str(s.side), score=s.score)
            for s in rating.neighbour_scores
        ],
        time=_timestamp(rating.time),
    )


def rating_from_proto(message: feedback_pb2.SimilarityRating) -> Rating:
    """The domain rating of a proto one (validated later, by :meth:`RatingStore.submit`).

    Raises:
        InvalidArgument: The preference is UNSPECIFIED or unknown, or a neighbour's side
            is not ``left`` or ``right``.
    """
    preference = _PREFERENCE_FROM_PROTO.get(message.preference)
    if preference is None:
        raise InvalidArgument(
            f"rating.preference {feedback_pb2.Preference.Name(message.preference)} is not "
            "set: choose PREFERENCE_LEFT, PREFERENCE_RIGHT or PREFERENCE_TIE"
            if message.preference == feedback_pb2.PREFERENCE_UNSPECIFIED
            else f"rating.preference {message.preference} is unknown"
        )
    return Rating(
        rating_id=message.rating_id,
        rater_id=message.rater_id,
        trial_id=message.trial_id,
        seed_track_id=message.seed_track_id,
        left=ShownList(message.left.version, tuple(message.left.track_ids)),
        right=ShownList(message.right.version, tuple(message.right.track_ids)),
        preference=preference,
        neighbour_scores=tuple(
            NeighbourScore(
                s.track_id, parse_side(s.side, f"rating.neighbour_scores[{i}].side"), s.score
            )
            for i, s in enumerate(message.neighbour_scores)
        ),
        time=message.time.ToDatetime(tzinfo=dt.UTC) if message.HasField("time") else None,
    )


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    """Serves user events and similarity ratings over gRPC.

    Args:
        events: The Redis-backed event log.
        ratings: The Redis-backed rating store.
    """

    def __init__(self, events: EventLog, ratings: RatingStore) -> None:
        self._events = events
        self._ratings = ratings

    async def RecordEvents(
        self, request: feedback_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.RecordEventsResponse:
        """Stores a batch of events, all or nothing; returns how many were new."""
        recorded = await self._events.record(events_from_proto(request.events))
        return feedback_pb2.RecordEventsResponse(recorded=recorded)

    async def SubmitRating(
        self, request: feedback_pb2.SubmitRatingRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.SubmitRatingResponse:
        """Stores one rating; a known rating_id is a no-op (created false)."""
        if not request.HasField("rating"):
            raise InvalidArgument("rating is missing")
        rating = rating_from_proto(request.rating)
        created = await self._ratings.submit(rating)
        if created:
            logger.info(
                "rating %s by %s: %s vs %s, %s",
                rating.rating_id,
                rating.rater_id,
                rating.left.version,
                rating.right.version,
                rating.preference,
            )
        return feedback_pb2.SubmitRatingResponse(rating_id=rating.rating_id, created=created)

    async def ListRatings(
        self, request: feedback_pb2.ListRatingsRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.ListRatingsResponse:
        """Ratings oldest first, optionally only those comparing two versions."""
        ratings = await self._ratings.list(request.version_a, request.version_b)
        return feedback_pb2.ListRatingsResponse(ratings=[rating_to_proto(r) for r in ratings])
