"""The catalog domain on a real redis-server: submit idempotency, atomicity, paging, queue."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from services.catalog.tracks import (
    Catalog,
    DeadLetter,
    IngestJob,
    RegistryVersions,
    SubmitStatus,
    check_metadata,
    decode_page_token,
    encode_page_token,
    now,
)
from services.common.audio import AudioError
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from services.control.registry import VersionStatus
from tests.unit.services.catalog.support import AAC_HEADER, noise_bytes, tone

LABELS = {"genre": "rock", "key": "A", "mode": "minor", "tempo_bpm": 120.0}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_submit_accepts_a_new_track_stores_it_and_queues_one_job(
    catalog: Catalog, async_redis: aioredis.Redis, store_root: Path
):
    audio = tone(seconds=2.0)
    result = await catalog.submit("t1", {**LABELS, "extra": {"region": "x"}}, data=audio)
    assert result.status is SubmitStatus.ACCEPTED
    assert result.content_hash == hashlib.sha256(audio).hexdigest()
    assert result.duration_seconds == pytest.approx(2.0)
    entries = await async_redis.xrange(catalog.keys.stream)
    assert [e[0] for e in entries] == [result.stream_entry_id]
    assert entries[0][1]["track_id"] == "t1"
    record = await catalog.get("t1")
    assert record.metadata["genre"] == "rock" and record.metadata["extra"] == {"region": "x"}
    assert record.metadata["duration_seconds"] == pytest.approx(2.0)
    assert record.mime_type == "audio/flac"
    (stored,) = _files(store_root)
    assert stored.read_bytes() == audio
    assert stored.name == f"{result.content_hash}.flac" and record.audio_uri == str(stored)


async def test_submit_same_audio_twice_is_duplicate_and_queues_nothing(
    catalog: Catalog, async_redis: aioredis.Redis
):
    audio = tone()
    first = await catalog.submit("t1", LABELS, data=audio)
    again = await catalog.submit("t1", {"genre": "changed"}, data=audio)
    assert again.status is SubmitStatus.DUPLICATE
    assert again.stream_entry_id == ""
    assert again.content_hash == first.content_hash
    assert again.duration_seconds == pytest.approx(first.duration_seconds)
    assert await async_redis.xlen(catalog.keys.stream) == 1
    assert (await catalog.get("t1")).metadata["genre"] == "rock"


async def test_submit_new_audio_under_an_existing_id_replaces_and_requeues(
    catalog: Catalog, async_redis: aioredis.Redis, store_root: Path
):
    await catalog.submit("t1", LABELS, data=tone(freq=440))
    await async_redis.hset(catalog.keys.embedded("t1"), "v1", "old-hash")
    replaced = await catalog.submit("t1", LABELS, data=tone(freq=660))
    assert replaced.status is SubmitStatus.REPLACED
    assert replaced.stream_entry_id
    assert await async_redis.xlen(catalog.keys.stream) == 2
    assert (await catalog.get("t1")).content_hash == replaced.content_hash
    # Embeddings of the old audio no longer count.
    assert not await async_redis.exists(catalog.keys.embedded("t1"))
    assert len(_files(store_root)) == 2
    assert await catalog.list() is not None and (await catalog.list()).total == 1


async def test_same_audio_under_two_ids_is_stored_once(catalog: Catalog, store_root: Path):
    audio = tone()
    a = await catalog.submit("a", {}, data=audio)
    b = await catalog.submit("b", {}, data=audio)
    assert a.status is b.status is SubmitStatus.ACCEPTED
    assert len(_files(store_root)) == 1


async def test_concurrent_submissions_of_one_track_queue_it_once(
    catalog: Catalog, async_redis: aioredis.Redis
):
    audio = tone()
    results = await asyncio.gather(*(catalog.submit("t1", LABELS, data=audio) for _ in range(5)))
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["accepted"] + ["duplicate"] * 4
    assert await async_redis.xlen(catalog.keys.stream) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (noise_bytes(5000), "could not be decoded"),
        (b"", "is empty"),
        (AAC_HEADER + noise_bytes(2000), "AAC/MP4 audio, which is not supported"),
        (tone(seconds=0.2), "at least"),
        (tone(seconds=2.0, freq=0.0), "silent"),
    ],
    ids=["random-bytes", "zero-bytes", "aac", "too-short", "silence"],
)
async def test_submit_refuses_bad_audio_and_stores_nothing(
    catalog: Catalog, async_redis: aioredis.Redis, store_root: Path, payload: bytes, message: str
):
    with pytest.raises(AudioError, match=message) as refused:
        await catalog.submit("t1", LABELS, data=payload)
    assert refused.value.status == "INVALID_ARGUMENT"
    assert _files(store_root) == []
    assert await async_redis.keys("*") == []
    with pytest.raises(NotFound):
        await catalog.get("t1")


async def test_submit_refuses_a_payload_over_the_limit_as_resource_exhausted(
    catalog: Catalog, store_root: Path
):
    with pytest.raises(ResourceExhausted, match="limit"):
        await catalog.submit("t1", {}, data=b"\0" * (4 * 1024 * 1024 + 1))
    assert _files(store_root) == []


async def test_submit_reads_an_allowed_file_uri(catalog: Catalog, tmp_path: Path):
    path = tmp_path / "upload.wav"
    path.write_bytes(tone(fmt="WAV"))
    result = await catalog.submit("t1", {}, uri=path.as_uri())
    assert result.status is SubmitStatus.ACCEPTED
    assert (await catalog.get("t1")).mime_type == "audio/wav"


@pytest.mark.parametrize(
    ("track_id", "kwargs", "message"),
    [
        ("bad id!", {"data": b"x"}, "track_id"),
        ("", {"data": b"x"}, "track_id"),
        ("x" * 129, {"data": b"x"}, "track_id"),
        ("t1", {}, "exactly one"),
        ("t1", {"uri": "/etc/passwd"}, "not a URL"),
        ("t1", {"uri": "file:///nonexistent/x.flac"}, "no such file"),
    ],
)
async def test_submit_refuses_malformed_requests(
    catalog: Catalog, track_id: str, kwargs: dict, message: str
):
    with pytest.raises(InvalidArgument, match=message):
        await catalog.submit(track_id, {}, **kwargs)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"key": "H"}, "not a tonic"),
        ({"mode": "dorian"}, "major"),
        ({"tempo_bpm": -1.0}, "tempo_bpm"),
        ({"tempo_bpm": float("nan")}, "tempo_bpm"),
        ({"extra": {"Bad Key": "v"}}, "extra key"),
        ({"extra": {"k": "v" * 257}}, "at most 256"),
        ({"colour": "red"}, "no field"),
    ],
)
def test_check_metadata_names_the_bad_field(metadata: dict, message: str):
    with pytest.raises(InvalidArgument, match=message):
        check_metadata(metadata)


def test_check_metadata_drops_unknowns_and_the_callers_duration():
    clean = check_metadata(
        {"title": "", "tempo_bpm": 0.0, "duration_seconds": 9.0, "extra": {}, "genre": "jazz"}
    )
    assert clean == {"genre": "jazz"}


async def test_list_pages_through_every_track_in_id_order(catalog: Catalog):
    ids = [f"t{i:02d}" for i in range(7)]
    audio = tone(seconds=0.6)
    for track_id in reversed(ids):
        await catalog.submit(track_id, {}, data=audio)
    seen, token = [], ""
    while True:
        page = await catalog.list(page_size=3, page_token=token)
        assert page.total == 7 and len(page.tracks) <= 3
        seen += [t.track_id for t in page.tracks]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    assert (await catalog.list()).next_page_token == ""


@pytest.mark.parametrize(("size", "token"), [(1001, ""), (10, "!!notatoken"), (10, "Zm9vIGJhcg")])
async def test_list_refuses_bad_page_size_and_foreign_tokens(catalog: Catalog, size, token):
    with pytest.raises(InvalidArgument):
        await catalog.list(page_size=size, page_token=token)


def test_page_tokens_round_trip():
    assert decode_page_token(encode_page_token("a:b-c.d_e")) == "a:b-c.d_e"


async def test_ingest_states_follow_the_current_audio_per_active_version(
    catalog: Catalog, async_redis: aioredis.Redis
):
    result = await catalog.submit("t1", {}, data=tone())
    await async_redis.hset(catalog.keys.embedded("t1"), mapping={"v2": result.content_hash})
    record = await catalog.get("t1")
    assert await catalog.ingest_states(record) == [("v1", False), ("v2", True)]


async def test_audio_streams_the_stored_file_in_chunks_of_at_most_one_mib(catalog: Catalog):
    audio = tone(seconds=30.0, fmt="WAV")  # ~1.3 MB
    await catalog.submit("t1", {}, data=audio)
    mime, chunks = await catalog.audio("t1")
    parts = [chunk async for chunk in chunks]
    assert mime == "audio/wav"
    assert len(parts) == 2 and all(len(p) <= 1024 * 1024 for p in parts)
    assert b"".join(parts) == audio


async def test_audio_of_an_unknown_track_is_not_found(catalog: Catalog):
    with pytest.raises(NotFound):
        await catalog.audio("nope")


async def test_ingest_status_counts_stream_pending_lag_and_consumers(
    catalog: Catalog, async_redis: aioredis.Redis
):
    await catalog.ensure_group()
    for i in range(3):
        await catalog.submit(f"t{i}", {}, data=tone(freq=300 + 100 * i))
    await async_redis.xreadgroup(
        catalog.keys.group, "worker-a", {catalog.keys.stream: ">"}, count=1
    )
    status = await catalog.ingest_status()
    assert (status.stream_length, status.pending, status.lag, status.dead_letters) == (3, 1, 2, 0)
    assert [(c.name, c.pending) for c in status.consumers] == [("worker-a", 1)]


async def test_ingest_status_without_a_group_counts_everything_as_lag(catalog: Catalog):
    await catalog.submit("t1", {}, data=tone())
    status = await catalog.ingest_status()
    assert (status.stream_length, status.pending, status.lag) == (1, 0, 1)


async def _dead_letter(catalog: Catalog, client: aioredis.Redis, track_id: str) -> str:
    job = IngestJob(track_id, "ab" * 32, "/x/y.flac")
    letter = DeadLetter("", job, f"decode failed: {track_id}", 3, now(), "1-0")
    return await client.xadd(catalog.keys.dead_letters, letter.to_fields())


async def test_dead_letters_are_listed_newest_first_with_reason_and_attempts(
    catalog: Catalog, async_redis: aioredis.Redis
):
    first = await _dead_letter(catalog, async_redis, "a")
    second = await _dead_letter(catalog, async_redis, "b")
    letters = await catalog.dead_letters()
    assert [d.entry_id for d in letters] == [second, first]
    assert letters[0].reason == "decode failed: b" and letters[0].attempts == 3
    assert [d.entry_id for d in await catalog.dead_letters(limit=1)] == [second]
    with pytest.raises(InvalidArgument):
        await catalog.dead_letters(limit=1001)


async def test_retry_dead_letter_moves_it_back_onto_the_stream_once(
    catalog: Catalog, async_redis: aioredis.Redis
):
    dead_id = await _dead_letter(catalog, async_redis, "a")
    new_id = await catalog.retry_dead_letter(dead_id)
    (entry,) = await async_redis.xrange(catalog.keys.stream)
    assert entry[0] == new_id
    assert entry[1] == {
        "track_id": "a",
        "content_hash": "ab" * 32,
        "audio_uri": "/x/y.flac",
        "retry_of": dead_id,
    }
    assert await async_redis.xlen(catalog.keys.dead_letters) == 0
    with pytest.raises(NotFound):
        await catalog.retry_dead_letter(dead_id)
    with pytest.raises(InvalidArgument):
        await catalog.retry_dead_letter("not-an-id")


async def test_concurrent_retries_of_one_dead_letter_queue_it_once(
    catalog: Catalog, async_redis: aioredis.Redis
):
    dead_id = await _dead_letter(catalog, async_redis, "a")
    results = await asyncio.gather(
        *(catalog.retry_dead_letter(dead_id) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, str) for r in results) == 1
    assert all(isinstance(r, str | NotFound) for r in results)
    assert await async_redis.xlen(catalog.keys.stream) == 1


class _Lister:
    async def list_versions(self, statuses=()):
        all_versions = [
            SimpleNamespace(name="b", status=VersionStatus.READY),
            SimpleNamespace(name="a", status=VersionStatus.BACKFILLING),
            SimpleNamespace(name="c", status=VersionStatus.PUBLISHED),
        ]
        return [v for v in all_versions if not statuses or v.status in statuses]


async def test_registry_versions_are_the_backfilling_and_ready_ones_sorted():
    assert await RegistryVersions(_Lister()).active() == ["a", "b"]


async def test_mark_embedded_records_the_written_audio_per_version(catalog: Catalog):
    await catalog.submit("t1", LABELS, data=tone(freq=300.0))
    await catalog.submit("t2", LABELS, data=tone(freq=400.0))
    records = [await catalog.get("t1"), await catalog.get("t2")]
    assert await catalog.mark_embedded("v3", records) == [True, True]
    embedded = await catalog.embedded(["t1", "t2", "missing"])
    assert embedded["t1"] == {"v3": records[0].content_hash}
    assert embedded["t2"] == {"v3": records[1].content_hash}
    assert embedded["missing"] == {}
    assert await catalog.mark_embedded("v3", []) == []


async def test_mark_embedded_skips_replaced_audio_and_queues_a_forced_job_for_the_new_audio(
    catalog: Catalog, async_redis: aioredis.Redis
):
    await catalog.submit("t1", LABELS, data=tone(freq=300.0))
    old = await catalog.get("t1")
    replaced = await catalog.submit("t1", LABELS, data=tone(freq=500.0))
    queued = len(await async_redis.xrange(catalog.keys.stream))
    assert await catalog.mark_embedded("v3", [old]) == [False]
    assert await catalog.embedded(["t1"]) == {"t1": {}}
    entries = await async_redis.xrange(catalog.keys.stream)
    assert len(entries) == queued + 1
    fields = entries[-1][1]
    assert fields["force"] == "1" and fields["content_hash"] == replaced.content_hash
