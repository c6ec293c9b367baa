"""``CatalogService``: converts between protos and the catalog domain, nothing else.

Domain errors raised by :mod:`services.catalog.tracks` become status codes in the common
interceptor (``services/common/interceptors.py``). The conversions live here as
module-level functions; ``client.py`` and the ingest worker use them too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hearby.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from hearby.common.v1 import types_pb2
from services.catalog.tracks import (
    STRING_FIELDS,
    Catalog,
    DeadLetter,
    IngestJob,
    SubmitStatus,
    TrackRecord,
)

_STATUS_TO_PROTO = {
    SubmitStatus.ACCEPTED: catalog_pb2.SUBMIT_STATUS_ACCEPTED,
    SubmitStatus.DUPLICATE: catalog_pb2.SUBMIT_STATUS_DUPLICATE,
    SubmitStatus.REPLACED: catalog_pb2.SUBMIT_STATUS_REPLACED,
}
STATUS_FROM_PROTO = {value: key for key, value in _STATUS_TO_PROTO.items()}


def metadata_from_proto(message: types_pb2.TrackMetadata) -> dict[str, Any]:
    """TrackMetadata as the domain's dict of set fields (unset means unknown)."""
    data: dict[str, Any] = {name: getattr(message, name) for name in STRING_FIELDS}
    data["tempo_bpm"] = message.tempo_bpm
    data["duration_seconds"] = message.duration_seconds
    data["extra"] = dict(message.extra)
    return {k: v for k, v in data.items() if v}


def metadata_to_proto(metadata: Mapping[str, Any]) -> types_pb2.TrackMetadata:
    """The domain's metadata dict as TrackMetadata."""
    message = types_pb2.TrackMetadata(
        **{k: v for k, v in metadata.items() if k != "extra"},
    )
    message.extra.update(metadata.get("extra", {}))
    return message


def timestamp(moment: dt.datetime) -> Timestamp:
    """A UTC datetime as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def track_to_proto(record: TrackRecord) -> catalog_pb2.Track:
    """A track record as the Track message."""
    return catalog_pb2.Track(
        track_id=record.track_id,
        metadata=metadata_to_proto(record.metadata),
        content_hash=record.content_hash,
        audio_uri=record.audio_uri,
        submitted_at=timestamp(record.submitted_at),
    )


def track_from_proto(message: catalog_pb2.Track) -> TrackRecord:
    """A Track message as a record (the MIME type is not part of the message: left empty)."""
    metadata = metadata_from_proto(message.metadata)
    return TrackRecord(
        track_id=message.track_id,
        content_hash=message.content_hash,
        audio_uri=message.audio_uri,
        mime_type="",
        duration_seconds=message.metadata.duration_seconds,
        submitted_at=message.submitted_at.ToDatetime(dt.UTC),
        metadata=metadata,
    )


def dead_letter_from_proto(message: catalog_pb2.DeadLetter) -> DeadLetter:
    """A DeadLetter message as the domain object (only the track id of its job is known)."""
    return DeadLetter(
        entry_id=message.entry_id,
        job=IngestJob(message.track_id, "", ""),
        reason=message.reason,
        attempts=message.attempts,
        failed_at=message.failed_at.ToDatetime(dt.UTC),
    )


def dead_letter_to_proto(letter: DeadLetter) -> catalog_pb2.DeadLetter:
    """A dead letter as its message."""
    return catalog_pb2.DeadLetter(
        entry_id=letter.entry_id,
        track_id=letter.job.track_id,
        reason=letter.reason,
        attempts=letter.attempts,
        failed_at=timestamp(letter.failed_at),
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Serves the catalog over gRPC.

    Args:
        catalog: The catalog domain object (Redis, audio store, active versions).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def SubmitTrack(
        self, request: catalog_pb2.SubmitTrackRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.SubmitTrackResponse:
        """Adds, re-submits or replaces a track."""
        source = request.audio.WhichOneof("source")
        result = await self._catalog.submit(
            request.track_id,
            metadata_from_proto(request.metadata),
            data=request.audio.data if source == "data" else None,
            uri=request.audio.uri if source == "uri" else None,
        )
        return catalog_pb2.SubmitTrackResponse(
            track_id=result.track_id,
            content_hash=result.content_hash,
            status=_STATUS_TO_PROTO[result.status],
            stream_entry_id=result.stream_entry_id,
            duration_seconds=result.duration_seconds,
        )

    async def GetTrack(
        self, request: catalog_pb2.GetTrackRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetTrackResponse:
        """A track with its per-version ingest state."""
        record = await self._catalog.get(request.track_id)
        states = await self._catalog.ingest_states(record)
        return catalog_pb2.GetTrackResponse(
            track=track_to_proto(record),
            versions=[
                catalog_pb2.VersionIngestState(version=v, embedded=done) for v, done in states
            ],
        )

    async def ListTracks(
        self, request: catalog_pb2.ListTracksRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListTracksResponse:
        """A page of tracks in id order."""
        page = await self._catalog.list(request.page_size, request.page_token)
        return catalog_pb2.ListTracksResponse(
            tracks=[track_to_proto(t) for t in page.tracks],
            next_page_token=page.next_page_token,
            total=page.total,
        )

    async def GetTrackAudio(
        self, request: catalog_pb2.GetTrackAudioRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[catalog_pb2.GetTrackAudioResponse]:
        """The stored audio file in chunks of at most 1 MiB; the MIME type comes first."""
        mime_type, chunks = await self._catalog.audio(request.track_id)
        first = True
        async for chunk in chunks:
            yield catalog_pb2.GetTrackAudioResponse(
                mime_type=mime_type if first else "", chunk=chunk
            )
            first = False
        if first:  # an empty file still tells the caller its type
            yield catalog_pb2.GetTrackAudioResponse(mime_type=mime_type)

    async def GetIngestStatus(
        self, request: catalog_pb2.GetIngestStatusRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.GetIngestStatusResponse:
        """Stream length, pending entries, lag, dead letters and consumers."""
        status = await self._catalog.ingest_status()
        return catalog_pb2.GetIngestStatusResponse(
            stream_length=status.stream_length,
            pending=status.pending,
            lag=status.lag,
            dead_letters=status.dead_letters,
            consumers=[
                catalog_pb2.GetIngestStatusResponse.Consumer(
                    name=c.name, pending=c.pending, idle_ms=c.idle_ms
                )
                for c in status.consumers
            ],
        )

    async def ListDeadLetters(
        self, request: catalog_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListDeadLettersResponse:
        """Dead letters, newest first."""
        letters = await self._catalog.dead_letters(request.limit)
        return catalog_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_proto(letter) for letter in letters]
        )

    async def RetryDeadLetter(
        self, request: catalog_pb2.RetryDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.RetryDeadLetterResponse:
        """Puts a dead letter back on the ingest stream."""
        entry_id = await self._catalog.retry_dead_letter(request.entry_id)
        return catalog_pb2.RetryDeadLetterResponse(stream_entry_id=entry_id)
