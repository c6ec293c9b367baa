"""Typed async client of ``CatalogService``, and a smoke CLI.

Returns the domain objects of :mod:`services.catalog.tracks` and raises the domain errors
of ``services/common/errors.py`` (InvalidArgument, NotFound, ResourceExhausted,
Unavailable, ...) for the status codes the service returns, so callers never handle
protos or ``grpc.aio.AioRpcError``.

Smoke test against a running service::

    python -m services.catalog.client --address 127.0.0.1:50054 status
    python -m services.catalog.client submit TRACK_ID path/to/file.flac --genre rock
    python -m services.catalog.client get TRACK_ID | list | dead-letters | retry ENTRY_ID
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hearby.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from hearby.common.v1 import types_pb2
from services.catalog.servicer import (
    STATUS_FROM_PROTO,
    dead_letter_from_proto,
    metadata_to_proto,
    track_from_proto,
)
from services.catalog.settings import DEFAULT_PORT
from services.catalog.tracks import (
    ConsumerState,
    DeadLetter,
    IngestStatus,
    SubmitResult,
    TrackPage,
    TrackRecord,
)
from services.common import rpc
from services.common.channels import open_channel
from services.common.smoke import run_smoke

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True)
class TrackState:
    """GetTrack's answer: the track and, per active version, whether it is embedded."""

    track: TrackRecord
    versions: dict[str, bool]


class CatalogClient:
    """Calls ``CatalogService`` over an existing channel.

    Args:
        channel: A ``grpc.aio`` channel to the catalog (the caller owns it). Submitting
            large files needs ``grpc.max_send_message_length`` raised on it (see
            :func:`channel_options`).
        timeout_seconds: Deadline of each call; a slower call raises DeadlineExceeded.
            A submission decodes the whole file, so leave it generous (default 60).
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float = 60.0) -> None:
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        self._timeout = timeout_seconds

    async def submit_track(
        self,
        track_id: str,
        *,
        data: bytes | None = None,
        uri: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> SubmitResult:
        """Adds, re-submits or replaces a track (exactly one of ``data`` and ``uri``).

        Args:
            track_id: The track's id.
            data: The encoded audio file.
            uri: A URI the service can read (``file:///...`` or an allowed fsspec URL).
            metadata: TrackMetadata fields by proto name (``extra`` as a dict).

        Raises:
            InvalidArgument: Bad id, metadata or audio (the message names the problem).
            ResourceExhausted: The audio is larger than the service's limit.
            Unavailable: Redis or the audio store is down; safe to retry.
        """
        audio = types_pb2.AudioInput(data=data) if uri is None else types_pb2.AudioInput(uri=uri)
        request = catalog_pb2.SubmitTrackRequest(
            track_id=track_id, audio=audio, metadata=metadata_to_proto(metadata or {})
        )
        reply = await rpc.call(self._stub.SubmitTrack(request, timeout=self._timeout))
        return SubmitResult(
            reply.track_id,
            reply.content_hash,
            STATUS_FROM_PROTO[reply.status],
            reply.stream_entry_id,
            reply.duration_seconds,
        )

    async def get_track(self, track_id: str) -> TrackState:
        """A track and its per-version ingest state.

        Raises:
            NotFound: No such track.
        """
        request = catalog_pb2.GetTrackRequest(track_id=track_id)
        reply = await rpc.call(self._stub.GetTrack(request, timeout=self._timeout))
        return TrackState(
            track_from_proto(reply.track), {s.version: s.embedded for s in reply.versions}
        )

    async def list_tracks(self, page_size: int = 0, page_token: str = "") -> TrackPage:
        """One page of tracks in id order (``page_size`` 0 means 100)."""
        request = catalog_pb2.ListTracksRequest(page_size=page_size, page_token=page_token)
        reply = await rpc.call(self._stub.ListTracks(request, timeout=self._timeout))
        return TrackPage(
            [track_from_proto(t) for t in reply.tracks], reply.next_page_token, reply.total
        )

    async def all_tracks(self, page_size: int = 0) -> AsyncIterator[TrackRecord]:
        """Every track in id order, page by page."""
        token = ""
        while True:
            page = await self.list_tracks(page_size, token)
            for track in page.tracks:
                yield track
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def get_track_audio(self, track_id: str) -> tuple[str, bytes]:
        """A track's stored audio file: (MIME type, bytes).

        Raises:
            NotFound: No such track.
        """
        request = catalog_pb2.GetTrackAudioRequest(track_id=track_id)
        mime_type, chunks = "", []
        with rpc.domain_errors():
            async for reply in self._stub.GetTrackAudio(request, timeout=self._timeout):
                mime_type = mime_type or reply.mime_type
                chunks.append(reply.chunk)
        return mime_type, b"".join(chunks)

    async def ingest_status(self) -> IngestStatus:
        """The ingest queue's state."""
        reply = await rpc.call(
            self._stub.GetIngestStatus(catalog_pb2.GetIngestStatusRequest(), timeout=self._timeout)
        )
        return IngestStatus(
            stream_length=reply.stream_length,
            pending=reply.pending,
            lag=reply.lag,
            dead_letters=reply.dead_letters,
            consumers=[ConsumerState(c.name, c.pending, c.idle_ms) for c in reply.consumers],
        )

    async def dead_letters(self, limit: int = 0) -> list[DeadLetter]:
        """Dead letters, newest first (``limit`` 0 means 100)."""
        request = catalog_pb2.ListDeadLettersRequest(limit=limit)
        reply = await rpc.call(self._stub.ListDeadLetters(request, timeout=self._timeout))
        return [dead_letter_from_proto(d) for d in reply.dead_letters]

    async def retry_dead_letter(self, entry_id: str) -> str:
        """Re-queues a dead letter; returns the new ingest stream entry id.

        Raises:
            NotFound: No such dead letter.
        """
        request = catalog_pb2.RetryDeadLetterRequest(entry_id=entry_id)
        reply = await rpc.call(self._stub.RetryDeadLetter(request, timeout=self._timeout))
        return reply.stream_entry_id


def channel_options(max_message_mib: int = 80) -> list[tuple[str, int]]:
    """Channel options that let a 64 MiB upload (plus metadata) through."""
    limit = max_message_mib * 1024 * 1024
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]


async def _smoke(args: argparse.Namespace) -> list[str]:
    async with open_channel(args.address, options=channel_options()) as channel:
        client = CatalogClient(channel, args.timeout)
        if args.command == "submit":
            metadata = {k: v for k in ("genre", "artist") if (v := getattr(args, k))}
            result = await client.submit_track(
                args.track_id, data=args.file.read_bytes(), metadata=metadata
            )
            return [
                f"{result.track_id} {result.status.value} {result.content_hash[:12]} "
                f"{result.duration_seconds:.1f} s {result.stream_entry_id}"
            ]
        if args.command == "get":
            state = await client.get_track(args.track_id)
            versions = " ".join(f"{v}={'yes' if e else 'no'}" for v, e in state.versions.items())
            return [
                f"{state.track.track_id} {state.track.audio_uri} {state.track.metadata}",
                versions,
            ]
        if args.command == "list":
            page = await client.list_tracks(args.page_size)
            return [t.track_id for t in page.tracks] + [f"({page.total} tracks)"]
        if args.command == "dead-letters":
            return [
                f"{d.entry_id} {d.job.track_id} after {d.attempts}: {d.reason}"
                for d in await client.dead_letters()
            ]
        if args.command == "retry":
            return [await client.retry_dead_letter(args.entry_id)]
        status = await client.ingest_status()
        lines = [
            f"stream {status.stream_length}  pending {status.pending}  lag {status.lag}  "
            f"dead letters {status.dead_letters}"
        ]
        lines += [f"  {c.name}: {c.pending} pending, idle {c.idle_ms} ms" for c in status.consumers]
        return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.catalog.client", description="Calls the catalog service."
    )
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help="host:port of the service")
    parser.add_argument("--timeout", type=float, default=60.0, help="call deadline in seconds")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="ingest queue state")
    submit = commands.add_parser("submit", help="submit one audio file")
    submit.add_argument("track_id")
    submit.add_argument("file", type=Path)
    submit.add_argument("--genre", default="")
    submit.add_argument("--artist", default="")
    commands.add_parser("get", help="one track").add_argument("track_id")
    commands.add_parser("list", help="the first page of tracks").add_argument(
        "--page-size", type=int, default=0
    )
    commands.add_parser("dead-letters", help="dead letters, newest first")
    commands.add_parser("retry", help="re-queue a dead letter").add_argument("entry_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one smoke call; prints the answer, or the error and exit code 1."""
    return run_smoke(_smoke(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
