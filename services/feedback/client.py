"""Typed async client of ``FeedbackService``, and a smoke CLI.

Takes and returns domain objects (:class:`~services.feedback.events.UserEvent`,
:class:`~services.feedback.ratings.Rating`) and raises the domain errors of
``services/common/errors.py`` (InvalidArgument, Unavailable, ...) for the status codes the
service returns, so callers never handle protos or ``grpc.aio.AioRpcError``.

Smoke test against a running service::

    python -m services.feedback.client --address 127.0.0.1:50055 events USER TRACK --type like
    python -m services.feedback.client ratings [--versions VERSION_A VERSION_B]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc

from hearby.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from services.common import rpc
from services.common.channels import open_channel
from services.common.smoke import run_smoke
from services.feedback.events import EventType, UserEvent
from services.feedback.ratings import Rating
from services.feedback.servicer import event_to_proto, rating_from_proto, rating_to_proto
from services.feedback.settings import DEFAULT_PORT

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


class FeedbackClient:
    """Calls ``FeedbackService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the feedback service (the caller owns it).
        timeout_seconds: Deadline of each call; a slower call raises DeadlineExceeded.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 5.0) -> None:
        self._stub = feedback_pb2_grpc.FeedbackServiceStub(channel)
        self._timeout = timeout_seconds

    async def record_events(self, events: Sequence[UserEvent]) -> int:
        """Stores up to 1000 events, all or nothing.

        Returns:
            How many were newly stored (known event ids are not counted).

        Raises:
            InvalidArgument: An event is invalid (the message names its index).
            Unavailable: The service or its Redis cannot be reached; retrying is safe for
                events with an ``event_id``.
        """
        request = feedback_pb2.RecordEventsRequest(events=[event_to_proto(e) for e in events])
        reply = await rpc.call(self._stub.RecordEvents(request, timeout=self._timeout))
        return reply.recorded

    async def submit_rating(self, rating: Rating) -> bool:
        """Stores one rating; True if stored now, False if its id was stored before.

        Raises:
            InvalidArgument: The rating is invalid (the message names the field).
            Unavailable: The service or its Redis cannot be reached; retrying is safe.
        """
        request = feedback_pb2.SubmitRatingRequest(rating=rating_to_proto(rating))
        reply = await rpc.call(self._stub.SubmitRating(request, timeout=self._timeout))
        return reply.created

    async def list_ratings(self, version_a: str = "", version_b: str = "") -> list[Rating]:
        """Ratings, oldest first; with both versions, only those comparing the two.

        Raises:
            InvalidArgument: Only one version given, or a bad version name.
            Unavailable: The service or its Redis cannot be reached.
        """
        request = feedback_pb2.ListRatingsRequest(version_a=version_a, version_b=version_b)
        reply = await rpc.call(self._stub.ListRatings(request, timeout=self._timeout))
        return [rating_from_proto(r) for r in reply.ratings]


def _describe(rating: Rating) -> str:
    when = rating.time.isoformat(timespec="seconds") if rating.time else "?"
    return (
        f"{when} {rating.rating_id:<36} {rating.rater_id:<12} seed {rating.seed_track_id} "
        f"{rating.left.version} vs {rating.right.version}: {rating.preference} "
        f"({len(rating.neighbour_scores)} scores)"
    )


async def _smoke(args: argparse.Namespace) -> list[str]:
    async with open_channel(args.address) as channel:
        client = FeedbackClient(channel, args.timeout)
        if args.command == "events":
            event = UserEvent(
                user_id=args.user,
                track_id=args.track,
                type=EventType(args.type),
                position_seconds=args.position,
                request_id=args.request_id,
                event_id=args.event_id,
            )
            return [f"recorded {await client.record_events([event])}"]
        version_a, version_b = args.versions or ("", "")
        return [_describe(r) for r in await client.list_ratings(version_a, version_b)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.feedback.client", description="Calls the feedback service."
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the service")
    parser.add_argument("--timeout", type=float, default=5.0, help="call deadline in seconds")
    commands = parser.add_subparsers(dest="command", required=True)
    events = commands.add_parser("events", help="record one event")
    events.add_argument("user")
    events.add_argument("track")
    events.add_argument("--type", choices=[t.value for t in EventType], default="play")
    events.add_argument("--position", type=float, default=0.0, help="seconds into the track")
    events.add_argument("--request-id", default="", help="the response that recommended it")
    events.add_argument("--event-id", default="", help="id that makes a retry a no-op")
    ratings = commands.add_parser("ratings", help="list ratings, oldest first")
    ratings.add_argument(
        "--versions", nargs=2, metavar=("A", "B"), help="only ratings comparing A and B"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one smoke call; prints the result, or the error and exit code 1."""
    return run_smoke(_smoke(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
