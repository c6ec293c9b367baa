"""``RankerService``: converts between protos and the recommender, nothing else.

Domain errors raised below become status codes in the common interceptor
(``services/common/interceptors.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from hearby.common.v1 import types_pb2
from hearby.ranker.v1 import ranker_pb2, ranker_pb2_grpc
from services.common.errors import InvalidArgument
from services.feedback.events import UserEvent
from services.feedback.servicer import event_type_from_proto
from services.ranker.recommender import Answer, AudioSeed, Recommender, SessionState
from services.ranker.routing import Choice
from services.vectorstore.servicer import metadata_to_proto

logger = logging.getLogger(__name__)

_ATTRIBUTES = {
    ranker_pb2.ATTRIBUTE_UNSPECIFIED: "",
    ranker_pb2.ATTRIBUTE_GENRE: "genre",
    ranker_pb2.ATTRIBUTE_MOOD: "mood",
    ranker_pb2.ATTRIBUTE_INSTRUMENT: "instrument",
    ranker_pb2.ATTRIBUTE_TEMPO: "tempo",
    ranker_pb2.ATTRIBUTE_KEY: "key",
}
_CHOICES = {
    Choice.EXPLICIT: types_pb2.VERSION_CHOICE_EXPLICIT,
    Choice.BY_ATTRIBUTE: types_pb2.VERSION_CHOICE_BY_ATTRIBUTE,
    Choice.EXPERIMENT: types_pb2.VERSION_CHOICE_EXPERIMENT,
    Choice.DEFAULT: types_pb2.VERSION_CHOICE_DEFAULT,
}


def attribute_from_proto(value: int) -> str:
    """The attribute name of a ``by`` enum value ("" for UNSPECIFIED).

    Raises:
        InvalidArgument: An unknown value.
    """
    if value not in _ATTRIBUTES:
        allowed = ", ".join(ranker_pb2.Attribute.Name(v) for v in _ATTRIBUTES)
        raise InvalidArgument(f"by = {value} is not one of {allowed}")
    return _ATTRIBUTES[value]


def attribution_to_proto(answer: Answer) -> types_pb2.Attribution:
    """The ``Attribution`` of an answer."""
    route = answer.route
    return types_pb2.Attribution(
        request_id=answer.request_id,
        version=route.version.name,
        choice=_CHOICES[route.choice],
        experiment=route.experiment,
        arm=route.arm,
    )


def tracks_to_proto(answer: Answer) -> list[types_pb2.ScoredTrack]:
    """The answer's tracks as ``ScoredTrack`` messages, in order."""
    return [
        types_pb2.ScoredTrack(
            track_id=t.track_id, score=t.score, metadata=metadata_to_proto(t.metadata)
        )
        for t in answer.tracks
    ]


class LatestUpdate:
    """A one-slot mailbox: a new update replaces one the client has not read yet.

    This is the session's back-pressure: a slow reader gets the newest list, never a
    growing queue of stale ones.
    """

    def __init__(self) -> None:
        self._item: ranker_pb2.SessionResponse | None = None
        self._closed = False
        self._changed = asyncio.Event()

    def put(self, item: ranker_pb2.SessionResponse) -> None:
        """Offers an update; it replaces one not read yet."""
        self._item = item
        self._changed.set()

    def close(self) -> None:
        """No more updates: ``get`` returns what is left, then None."""
        self._closed = True
        self._changed.set()

    async def get(self) -> ranker_pb2.SessionResponse | None:
        """The newest unread update; None once closed and drained."""
        while self._item is None and not self._closed:
            self._changed.clear()
            await self._changed.wait()
        item, self._item = self._item, None
        return item


class RankerServicer(ranker_pb2_grpc.RankerServiceServicer):
    """Serves RankerService from a :class:`Recommender`."""

    def __init__(self, recommender: Recommender) -> None:
        self._recommender = recommender

    async def Similar(
        self, request: ranker_pb2.SimilarRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.SimilarResponse:
        """See ranker.proto."""
        seed = request.WhichOneof("seed")
        audio = None
        if seed == "audio":
            source = request.audio.WhichOneof("source")
            audio = AudioSeed(
                data=request.audio.data if source == "data" else b"",
                uri=request.audio.uri if source == "uri" else None,
            )
        answer = await self._recommender.similar(
            track_id=request.track_id if seed == "track_id" else None,
            audio=audio,
            k=request.k,
            filter_expression=request.filter.expression,
            version=request.version,
            by=attribute_from_proto(request.by),
            exclude_same_artist=request.exclude_same_artist,
            user_id=request.user_id,
        )
        return ranker_pb2.SimilarResponse(
            attribution=attribution_to_proto(answer), tracks=tracks_to_proto(answer)
        )

    async def Recommend(
        self, request: ranker_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> ranker_pb2.RecommendResponse:
        """See ranker.proto."""
        answer = await self._recommender.recommend(
            user_id=request.user_id,
            k=request.k,
            seed_track_ids=list(request.seed_track_ids),
            filter_expression=request.filter.expression,
            version=request.version,
            # proto3 cannot tell 0 from unset: 0 means "the service default" (ranker.proto).
            diversity_lambda=request.diversity_lambda or None,
            max_per_artist=request.max_per_artist or None,
        )
        return ranker_pb2.RecommendResponse(
            attribution=attribution_to_proto(answer),
            tracks=tracks_to_proto(answer),
            cold_start=answer.cold_start,
            explanation=answer.explanation,
        )

    async def Session(
        self,
        request_iterator: AsyncIterator[ranker_pb2.SessionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ranker_pb2.SessionResponse]:
        """See ranker.proto: one update per client message, newest kept for slow readers."""
        latest = LatestUpdate()
        reader = asyncio.create_task(self._read_session(request_iterator, latest))
        try:
            while (update := await latest.get()) is not None:
                yield update
            # The reader ended: re-raise its error (if any) so the call gets its status.
            await reader
        finally:
            # The client went away (or the call failed): stop reading and computing.
            reader.cancel()

    async def _read_session(
        self, requests: AsyncIterator[ranker_pb2.SessionRequest], latest: LatestUpdate
    ) -> None:
        try:
            first = await anext(requests, None)
            if first is None:
                return
            if first.WhichOneof("message") != "start":
                raise InvalidArgument("the first Session message must be a SessionStart")
            start = first.start
            state = await self._recommender.open_session(
                start.user_id, start.k, start.filter.expression, start.version
            )
            latest.put(await self._update(state))
            async for message in requests:
                if message.WhichOneof("message") != "event":
                    raise InvalidArgument(
                        "only the first Session message may be a SessionStart; send "
                        "ListeningEvents after it"
                    )
                await self._recommender.session_event(state, self._event(state, message.event))
                latest.put(await self._update(state))
        finally:
            latest.close()

    @staticmethod
    def _event(state: SessionState, event: ranker_pb2.ListeningEvent) -> UserEvent:
        return UserEvent(
            user_id=state.user_id,
            track_id=event.track_id,
            type=event_type_from_proto(event.type, "event.type"),
            position_seconds=event.position_seconds,
            request_id=event.request_id,
        )

    async def _update(self, state: SessionState) -> ranker_pb2.SessionResponse:
        answer = await self._recommender.session_update(state)
        return ranker_pb2.SessionResponse(
            attribution=attribution_to_proto(answer),
            tracks=tracks_to_proto(answer),
            events_seen=len(state.events),
        )
