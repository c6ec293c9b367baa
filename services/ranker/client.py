"""Typed async client of ``RankerService``, and a smoke CLI.

Returns plain dataclasses and raises the domain errors of ``services/common/errors.py``
(InvalidArgument, NotFound, ...) for the status codes the service returns.

Against a running ranker::

    python -m services.ranker.client --address 127.0.0.1:50053 similar TRACK_ID [--by genre]
    python -m services.ranker.client recommend USER_ID [--seed TRACK_ID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import grpc

from hearby.common.v1 import types_pb2
from hearby.ranker.v1 import ranker_pb2, ranker_pb2_grpc
from services.common import errors, rpc
from services.common.channels import open_channel
from services.feedback.events import EventType
from services.feedback.servicer import event_type_to_proto
from services.ranker.settings import DEFAULT_PORT
from services.vectorstore.records import TrackMetadata
from services.vectorstore.servicer import metadata_from_proto

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"

_BY = {
    "genre": ranker_pb2.ATTRIBUTE_GENRE,
    "mood": ranker_pb2.ATTRIBUTE_MOOD,
    "instrument": ranker_pb2.ATTRIBUTE_INSTRUMENT,
    "tempo": ranker_pb2.ATTRIBUTE_TEMPO,
    "key": ranker_pb2.ATTRIBUTE_KEY,
}


@dataclass(frozen=True)
class Attribution:
    """Which version served a response and why (``hearby.common.v1.Attribution``).

    ``choice`` is the VersionChoice name without its prefix: ``explicit``,
    ``by_attribute``, ``experiment`` or ``default``.
    """

    request_id: str
    version: str
    choice: str
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True)
class ScoredTrack:
    """A recommended track: cosine similarity to the query (higher is closer), labels."""

    track_id: str
    score: float
    metadata: TrackMetadata


@dataclass(frozen=True)
class Recommendations:
    """A ranker answer: Similar, Recommend or one Session update.

    Args:
        attribution: Request id, version and arm; send the request id back with events.
        tracks: In recommended order.
        cold_start: Recommend only: the user had no history and no seeds.
        explanation: Recommend only: how the list was made.
        events_seen: Session only: events this update reflects.
    """

    attribution: Attribution
    tracks: list[ScoredTrack]
    cold_start: bool = False
    explanation: str = ""
    events_seen: int = 0

    @property
    def track_ids(self) -> list[str]:
        """The track ids, in order."""
        return [t.track_id for t in self.tracks]


def _attribution(message: types_pb2.Attribution) -> Attribution:
    choice = types_pb2.VersionChoice.Name(message.choice).removeprefix("VERSION_CHOICE_")
    return Attribution(
        message.request_id, message.version, choice.lower(), message.experiment, message.arm
    )


def _tracks(messages: Sequence[types_pb2.ScoredTrack]) -> list[ScoredTrack]:
    return [ScoredTrack(m.track_id, m.score, metadata_from_proto(m.metadata)) for m in messages]


def _by(attribute: str) -> int:
    if attribute and attribute not in _BY:
        raise errors.InvalidArgument(
            f"by {attribute!r} is not an attribute; use one of {', '.join(_BY)}"
        )
    return _BY.get(attribute, ranker_pb2.ATTRIBUTE_UNSPECIFIED)


class SessionStream:
    """One open ``Session`` call: send events, read updates; use ``async with``."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call

    async def send(
        self,
        track_id: str,
        type: EventType,
        position_seconds: float = 0.0,
        request_id: str = "",
    ) -> None:
        """Sends one listening event."""
        event = ranker_pb2.ListeningEvent(
            track_id=track_id,
            type=event_type_to_proto(type),
            position_seconds=position_seconds,
            request_id=request_id,
        )
        with rpc.domain_errors():
            await self._call.write(ranker_pb2.SessionRequest(event=event))

    async def next(self) -> Recommendations:
        """The next update.

        Raises:
            HearbyError: The call failed (its status code's domain error).
            EOFError: The server closed the stream.
        """
        with rpc.domain_errors():
            reply = await self._call.read()
        if reply is grpc.aio.EOF:
            raise EOFError("the ranker closed the session")
        return Recommendations(
            _attribution(reply.attribution), _tracks(reply.tracks), events_seen=reply.events_seen
        )

    async def close(self) -> None:
        """Ends the session from the client side."""
        with rpc.domain_errors():
            await self._call.done_writing()
        self._call.cancel()

    async def __aenter__(self) -> SessionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._call.cancel()


class RankerClient:
    """Calls ``RankerService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the ranker (the caller owns it).
        timeout_seconds: Deadline of each unary call.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 10.0) -> None:
        self._stub = ranker_pb2_grpc.RankerServiceStub(channel)
        self._timeout = timeout_seconds

    async def similar(
        self,
        k: int,
        *,
        track_id: str | None = None,
        audio: bytes | None = None,
        audio_uri: str | None = None,
        filter_expression: str = "",
        version: str = "",
        by: str = "",
        exclude_same_artist: bool = False,
        user_id: str = "",
    ) -> Recommendations:
        """The k tracks nearest to a catalog track or to audio (bytes or a URI)."""
        request = ranker_pb2.SimilarRequest(
            k=k,
            filter=types_pb2.Filter(expression=filter_expression),
            version=version,
            by=_by(by),
            exclude_same_artist=exclude_same_artist,
            user_id=user_id,
        )
        if track_id is not None:
            request.track_id = track_id
        elif audio is not None:
            request.audio.data = audio
        elif audio_uri is not None:
            request.audio.uri = audio_uri
        reply = await rpc.call(self._stub.Similar(request, timeout=self._timeout))
        return Recommendations(_attribution(reply.attribution), _tracks(reply.tracks))

    async def recommend(
        self,
        user_id: str,
        k: int,
        *,
        seed_track_ids: Sequence[str] = (),
        filter_expression: str = "",
        version: str = "",
        diversity_lambda: float = 0.0,
        max_per_artist: int = 0,
    ) -> Recommendations:
        """K recommendations for a user (0 for lambda or the cap: the service default)."""
        request = ranker_pb2.RecommendRequest(
            user_id=user_id,
            k=k,
            seed_track_ids=seed_track_ids,
            filter=types_pb2.Filter(expression=filter_expression),
            version=version,
            diversity_lambda=diversity_lambda,
            max_per_artist=max_per_artist,
        )
        reply = await rpc.call(self._stub.Recommend(request, timeout=self._timeout))
        return Recommendations(
            _attribution(reply.attribution),
            _tracks(reply.tracks),
            cold_start=reply.cold_start,
            explanation=reply.explanation,
        )

    async def session(
        self, user_id: str, k: int, *, filter_expression: str = "", version: str = ""
    ) -> SessionStream:
        """Opens a session (sends its SessionStart); read the first list with ``next()``."""
        call = self._stub.Session()
        start = ranker_pb2.SessionStart(
            user_id=user_id,
            k=k,
            filter=types_pb2.Filter(expression=filter_expression),
            version=version,
        )
        with rpc.domain_errors():
            await call.write(ranker_pb2.SessionRequest(start=start))
        return SessionStream(call)


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")


def _show(answer: Recommendations) -> None:
    a = answer.attribution
    arm = f" experiment {a.experiment} arm {a.arm}" if a.experiment else ""
    _write(f"version {a.version} ({a.choice}){arm}, request {a.request_id}")
    if answer.explanation:
        _write(f"  {answer.explanation}")
    for track in answer.tracks:
        m = track.metadata
        _write(
            f"  {track.score:+.3f}  {track.track_id}  {m.genre or '-'} / {m.artist or '-'} / "
            f"{m.key or '-'} {m.mode or ''} / {m.tempo_bpm:g} bpm"
        )


async def _run(args: argparse.Namespace) -> None:
    async with open_channel(args.address) as channel:
        client = RankerClient(channel, args.timeout)
        if args.command == "similar":
            _show(
                await client.similar(
                    args.k,
                    track_id=args.track_id,
                    by=args.by,
                    version=args.version,
                    filter_expression=args.filter,
                )
            )
        else:
            _show(
                await client.recommend(
                    args.user_id,
                    args.k,
                    seed_track_ids=args.seed,
                    version=args.version,
                    filter_expression=args.filter,
                )
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one call and prints the list, or the error and exit code 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the ranker")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)
    similar = commands.add_parser("similar", help="tracks similar to a catalog track")
    similar.add_argument("track_id")
    similar.add_argument("--by", default="", choices=["", *_BY], help="similar by attribute")
    recommend = commands.add_parser("recommend", help="recommendations for a user")
    recommend.add_argument("user_id")
    recommend.add_argument("--seed", action="append", default=[], help="a seed track id")
    for sub in (similar, recommend):
        sub.add_argument("--k", type=int, default=10)
        sub.add_argument("--version", default="", help="explicit encoder version")
        sub.add_argument("--filter", default="", help='e.g. genre == "rock"')
    args = parser.parse_args(argv)
    try:
        asyncio.run(_run(args))
    except errors.HearbyError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
