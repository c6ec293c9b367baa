"""CatalogService over gRPC (in-process server, real Redis) through the typed client.

Exercises the status codes catalog.proto promises and the proto <-> domain conversions
in both directions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis

from hearby.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from hearby.common.v1 import types_pb2
from services.catalog.client import CatalogClient, channel_options
from services.catalog.server import binding
from services.catalog.servicer import metadata_from_proto, metadata_to_proto
from services.catalog.settings import CatalogSettings
from services.catalog.tracks import Catalog, DeadLetter, IngestJob, SubmitStatus, now
from services.common.bootstrap import start_server
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from tests.unit.services.catalog.support import AAC_HEADER, noise_bytes, tone

Code = grpc.StatusCode
LABELS = {
    "title": "Song",
    "artist": "a1",
    "genre": "bossa",
    "key": "F#",
    "mode": "major",
    "tempo_bpm": 96.5,
    "mood": "calm",
    "instrument": "guitar",
    "extra": {"region": "br"},
}


@pytest.fixture
async def channel(catalog: Catalog) -> AsyncIterator[grpc.aio.Channel]:
    running = await start_server(CatalogSettings(port=0, metrics_port=0), [binding(catalog)])
    try:
        address = f"127.0.0.1:{running.port}"
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            yield channel
    finally:
        await running.stop(0.5)


@pytest.fixture
def client(channel: grpc.aio.Channel) -> CatalogClient:
    return CatalogClient(channel, timeout_seconds=30)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(channel)


def test_metadata_round_trips_between_proto_and_domain():
    message = metadata_to_proto({**LABELS, "duration_seconds": 3.5})
    assert message.extra["region"] == "br" and message.tempo_bpm == 96.5
    assert metadata_from_proto(message) == {**LABELS, "duration_seconds": 3.5}
    assert metadata_from_proto(types_pb2.TrackMetadata()) == {}


async def test_submit_get_and_resubmit_through_the_client(client: CatalogClient):
    audio = tone(seconds=1.5, fmt="OGG", subtype="VORBIS")
    accepted = await client.submit_track("t1", data=audio, metadata=LABELS)
    assert accepted.status is SubmitStatus.ACCEPTED and accepted.stream_entry_id
    assert accepted.duration_seconds == pytest.approx(1.5, abs=0.01)
    duplicate = await client.submit_track("t1", data=audio, metadata=LABELS)
    assert duplicate.status is SubmitStatus.DUPLICATE and duplicate.stream_entry_id == ""
    replaced = await client.submit_track("t1", data=tone(freq=880), metadata=LABELS)
    assert replaced.status is SubmitStatus.REPLACED
    state = await client.get_track("t1")
    assert state.track.content_hash == replaced.content_hash
    assert state.track.metadata == {**LABELS, "duration_seconds": pytest.approx(2.0)}
    assert state.versions == {"v1": False, "v2": False}
    assert state.track.submitted_at.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (noise_bytes(4000), "supported formats are WAV, FLAC, OGG/Vorbis, Opus, MP3"),
        (b"", "is empty"),
        (AAC_HEADER + noise_bytes(1000), "AAC/MP4 audio, which is not supported"),
    ],
    ids=["random-bytes", "zero-bytes", "aac"],
)
async def test_submit_bad_audio_is_invalid_argument_naming_the_problem(
    stub, payload: bytes, detail: str
):
    request = catalog_pb2.SubmitTrackRequest(
        track_id="bad", audio=types_pb2.AudioInput(data=payload)
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.SubmitTrack(request)
    assert failure.value.code() == Code.INVALID_ARGUMENT
    assert detail in failure.value.details()


async def test_submit_without_audio_is_invalid_argument(client: CatalogClient, stub):
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.SubmitTrack(catalog_pb2.SubmitTrackRequest(track_id="t1"))
    assert failure.value.code() == Code.INVALID_ARGUMENT
    with pytest.raises(InvalidArgument, match="track_id"):
        await client.submit_track("no spaces", data=tone())


async def test_submit_over_the_size_limit_is_resource_exhausted(client: CatalogClient):
    with pytest.raises(ResourceExhausted):
        await client.submit_track("big", data=b"\0" * (4 * 1024 * 1024 + 10))


async def test_unknown_tracks_are_not_found(client: CatalogClient, stub):
    with pytest.raises(NotFound):
        await client.get_track("nope")
    with pytest.raises(NotFound):
        await client.get_track_audio("nope")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in stub.GetTrackAudio(catalog_pb2.GetTrackAudioRequest(track_id="nope")):
            pass
    assert failure.value.code() == Code.NOT_FOUND


async def test_track_audio_arrives_in_chunks_with_the_type_first(client: CatalogClient, stub):
    audio = tone(seconds=60.0, fmt="WAV", rate=22050)  # ~2.6 MB: three chunks
    await client.submit_track("long", data=audio)
    replies = [
        r async for r in stub.GetTrackAudio(catalog_pb2.GetTrackAudioRequest(track_id="long"))
    ]
    assert len(replies) == 3
    assert [r.mime_type for r in replies] == ["audio/wav", "", ""]
    assert all(len(r.chunk) <= 1024 * 1024 for r in replies)
    assert b"".join(r.chunk for r in replies) == audio
    assert await client.get_track_audio("long") == ("audio/wav", audio)


async def test_list_tracks_pages_in_id_order(client: CatalogClient):
    audio = tone(seconds=0.6)
    for track_id in ("c", "a", "b", "d"):
        await client.submit_track(track_id, data=audio)
    page = await client.list_tracks(page_size=3)
    assert [t.track_id for t in page.tracks] == ["a", "b", "c"] and page.total == 4
    rest = await client.list_tracks(page_size=3, page_token=page.next_page_token)
    assert [t.track_id for t in rest.tracks] == ["d"] and rest.next_page_token == ""
    assert [t.track_id async for t in client.all_tracks(page_size=1)] == ["a", "b", "c", "d"]
    with pytest.raises(InvalidArgument):
        await client.list_tracks(page_size=5000)


async def test_ingest_status_dead_letters_and_retry(
    client: CatalogClient, catalog: Catalog, async_redis: aioredis.Redis
):
    await catalog.ensure_group()
    await client.submit_track("t1", data=tone())
    letter = DeadLetter("", IngestJob("t9", "cd" * 32, "/a"), "decode failed: x", 2, now(), "5-0")
    dead_id = await async_redis.xadd(catalog.keys.dead_letters, letter.to_fields())
    status = await client.ingest_status()
    assert (status.stream_length, status.pending, status.lag, status.dead_letters) == (1, 0, 1, 1)
    (listed,) = await client.dead_letters()
    assert (listed.entry_id, listed.job.track_id, listed.reason, listed.attempts) == (
        dead_id,
        "t9",
        "decode failed: x",
        2,
    )
    new_id = await client.retry_dead_letter(dead_id)
    assert new_id and (await client.ingest_status()).stream_length == 2
    with pytest.raises(NotFound):
        await client.retry_dead_letter(dead_id)
    with pytest.raises(InvalidArgument):
        await client.retry_dead_letter("garbage")
