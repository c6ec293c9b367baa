"""The ingest worker on a real redis-server: ack after upsert, reclaim, dead letters, retries."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from services.catalog.tracks import Catalog
from services.common.audio import decode, resample
from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.ingest.consumer import IngestWorker, Outcome
from services.ingest.settings import IngestSettings
from tests.unit.services.catalog.support import StaticVersions, noise_bytes, tone
from tests.unit.services.ingest.conftest import (
    FakeEmbedder,
    FakeWriter,
    WorkerFactory,
    fingerprint,
)


async def _pending(client: aioredis.Redis, catalog: Catalog) -> int:
    return (await client.xpending(catalog.keys.stream, catalog.keys.group))["pending"]


async def _drain(worker: IngestWorker, rounds: int = 20) -> list[Outcome]:
    """Polls until nothing more arrives; returns the outcomes."""
    outcomes = []
    for _ in range(rounds):
        outcome = await worker.poll()
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes


async def _started(worker: IngestWorker) -> IngestWorker:
    await worker.start()
    return worker


async def _kill_mid_entry(worker: IngestWorker, embedder: FakeEmbedder) -> None:
    """Runs ``worker`` into the gated embed call, then cancels it (a crash before ack)."""
    embedder.gate = asyncio.Event()
    task = asyncio.create_task(worker.poll())
    await asyncio.wait_for(embedder.entered_gate.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    embedder.gate = None


async def test_worker_embeds_every_active_version_upserts_then_acks(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    await catalog.submit("t1", {"genre": "rock", "extra": {"region": "x"}}, data=tone(freq=440))
    await catalog.submit("t2", {}, data=tone(freq=550))
    pending_at_upsert = []
    real_upsert = writer.upsert

    async def upsert(version, records):
        pending_at_upsert.append(await _pending(async_redis, catalog))
        return await real_upsert(version, records)

    writer.upsert = upsert  # type: ignore[method-assign]
    worker = await _started(make_worker())
    assert await _drain(worker) == [Outcome.DONE, Outcome.DONE]
    # The entry was still pending while its rows were written: the ack comes after.
    assert pending_at_upsert == [1, 1, 1, 1]
    assert set(writer.rows) == {("v1", "t1"), ("v2", "t1"), ("v1", "t2"), ("v2", "t2")}
    row = writer.rows[("v1", "t1")]
    assert row.metadata.genre == "rock" and row.metadata.extra == {"region": "x"}
    assert row.metadata.duration_seconds == pytest.approx(2.0)
    assert np.linalg.norm(row.embedding) == pytest.approx(1.0)
    assert await async_redis.xlen(catalog.keys.stream) == 0
    assert await _pending(async_redis, catalog) == 0
    record = await catalog.get("t1")
    assert await catalog.ingest_states(record) == [("v1", True), ("v2", True)]


async def test_a_worker_that_dies_before_ack_leaves_the_entry_pending_for_another(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
    writer: FakeWriter,
):
    await catalog.submit("t1", {}, data=tone())
    doomed = await _started(make_worker("doomed"))
    await _kill_mid_entry(doomed, embedder)
    pending = await async_redis.xpending_range(
        catalog.keys.stream, catalog.keys.group, "-", "+", 10
    )
    assert [p["consumer"] for p in pending] == ["doomed"]
    rescuer = await _started(make_worker("rescuer", claim_idle_seconds=1.0))
    # Not idle long enough yet: a live worker may still be on it.
    assert await rescuer.poll() is None
    await asyncio.sleep(1.05)
    assert await rescuer.poll() is Outcome.DONE
    assert await _pending(async_redis, catalog) == 0
    assert await async_redis.xlen(catalog.keys.stream) == 0
    # v1 was written before the crash and is not written again; v2 once, by the rescuer.
    assert writer.writes == {("v1", "t1"): 1, ("v2", "t1"): 1}


async def test_a_restarted_worker_resumes_its_own_pending_entries_at_once(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
    writer: FakeWriter,
):
    await catalog.submit("t1", {}, data=tone())
    await _kill_mid_entry(await _started(make_worker("worker-1")), embedder)
    restarted = await _started(make_worker("worker-1", claim_idle_seconds=600))
    assert await restarted.poll() is Outcome.DONE
    assert await _pending(async_redis, catalog) == 0
    assert writer.writes == {("v1", "t1"): 1, ("v2", "t1"): 1}


async def test_undecodable_audio_is_dead_lettered_at_once_and_the_worker_goes_on(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    bad = await catalog.submit("bad", {}, data=tone(freq=300))
    Path((await catalog.get("bad")).audio_uri).write_bytes(noise_bytes(3000))  # corrupted
    await catalog.submit("good", {}, data=tone(freq=400))
    worker = await _started(make_worker())
    assert await _drain(worker) == [Outcome.DEAD_LETTERED, Outcome.DONE]
    (letter,) = await catalog.dead_letters()
    assert letter.job.track_id == "bad" and letter.attempts == 1
    assert letter.source_entry_id == bad.stream_entry_id
    assert letter.reason.startswith("decode failed: bad could not be decoded")
    assert set(writer.rows) == {("v1", "good"), ("v2", "good")}
    assert await _pending(async_redis, catalog) == 0
    assert await async_redis.xlen(catalog.keys.stream) == 0


async def test_a_malformed_entry_is_dead_lettered_with_the_reason(
    catalog: Catalog, async_redis: aioredis.Redis, make_worker: WorkerFactory
):
    worker = await _started(make_worker())
    await async_redis.xadd(catalog.keys.stream, {"track_id": "t 1", "audio_uri": ""})
    assert await worker.poll() is Outcome.DEAD_LETTERED
    (letter,) = await catalog.dead_letters()
    assert "malformed ingest entry" in letter.reason and "empty audio_uri" in letter.reason


async def test_a_rejected_embedding_request_is_poison(
    catalog: Catalog, make_worker: WorkerFactory, embedder: FakeEmbedder
):
    embedder.fail = InvalidArgument("audio is not finite")
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker())
    assert await worker.poll() is Outcome.DEAD_LETTERED
    (letter,) = await catalog.dead_letters()
    assert letter.reason == "rejected (INVALID_ARGUMENT): audio is not finite"


async def test_retryable_failures_stay_pending_then_dead_letter_after_max_attempts(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    writer.failures = [NotFound("version v1 has no collection")] * 3
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker(max_attempts=3, claim_idle_seconds=0.05))
    assert await worker.poll() is Outcome.RETRY
    assert await _pending(async_redis, catalog) == 1
    entry_id = (await async_redis.xrange(catalog.keys.stream))[0][0]
    assert await async_redis.hget(catalog.keys.failures, entry_id) == (
        "NOT_FOUND: version v1 has no collection"
    )
    for expected in (Outcome.RETRY, Outcome.DEAD_LETTERED):
        await asyncio.sleep(0.08)
        assert await worker.poll() is expected
    (letter,) = await catalog.dead_letters()
    assert letter.attempts == 3
    assert letter.reason == (
        "gave up after 3 attempts; last error: NOT_FOUND: version v1 has no collection"
    )
    assert await _pending(async_redis, catalog) == 0
    assert not await async_redis.exists(catalog.keys.failures)
    # The cause is fixed: RetryDeadLetter queues it again and it goes through.
    await catalog.retry_dead_letter(letter.entry_id)
    assert await worker.poll() is Outcome.DONE
    assert await catalog.dead_letters() == []
    assert set(writer.rows) == {("v1", "t1"), ("v2", "t1")}


async def test_an_outage_longer_than_max_attempts_dead_letters_nothing(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    # The vector store is down for five deliveries, more than max_attempts: they wait.
    writer.failures = [Unavailable("vector store down")] * 5
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker(max_attempts=3, claim_idle_seconds=0.05))
    outcomes = [await worker.poll()]
    for _ in range(5):
        await asyncio.sleep(0.08)
        outcomes.append(await worker.poll())
    assert outcomes == [Outcome.RETRY] * 5 + [Outcome.DONE]
    assert await catalog.dead_letters() == []
    assert set(writer.rows) == {("v1", "t1"), ("v2", "t1")}
    assert await _pending(async_redis, catalog) == 0
    # The failure and outage bookkeeping goes with the ack.
    assert not await async_redis.exists(catalog.keys.failures)


async def test_outages_do_not_hide_real_failures_from_max_attempts(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    writer.failures = [Unavailable("down"), NotFound("no collection"), NotFound("no collection")]
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker(max_attempts=2, claim_idle_seconds=0.05))
    outcomes = [await worker.poll()]
    for _ in range(2):
        await asyncio.sleep(0.08)
        outcomes.append(await worker.poll())
    # Delivery 1 met the outage (not counted); deliveries 2 and 3 are attempts 1 and 2.
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD_LETTERED]
    (letter,) = await catalog.dead_letters()
    assert letter.reason == "gave up after 2 attempts; last error: NOT_FOUND: no collection"


async def test_a_version_the_embedder_lost_in_a_restart_is_waited_for(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
):
    # Triton came back without the active versions; the control service reloads them.
    embedder.fail = NotFound("version 'v1' is not loaded in the embedder")
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker(max_attempts=1, claim_idle_seconds=0.05))
    assert await worker.poll() is Outcome.RETRY
    entry_id = (await async_redis.xrange(catalog.keys.stream))[0][0]
    reason = await async_redis.hget(catalog.keys.failures, entry_id)
    assert reason.startswith("UNAVAILABLE: version 'v1' is active but not loaded")
    await asyncio.sleep(0.08)
    assert await worker.poll() is Outcome.RETRY
    embedder.fail = None
    await asyncio.sleep(0.08)
    assert await worker.poll() is Outcome.DONE
    assert await catalog.dead_letters() == []


async def test_an_entry_whose_workers_kept_dying_is_dead_lettered_on_redelivery(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
):
    await catalog.submit("t1", {}, data=tone())
    for i in range(2):
        worker = await _started(make_worker(f"dies-{i}", claim_idle_seconds=0.05))
        if i:
            await asyncio.sleep(0.08)
        await _kill_mid_entry(worker, embedder)
        embedder.entered_gate.clear()
    await asyncio.sleep(0.08)
    last = await _started(make_worker("last", max_attempts=2, claim_idle_seconds=0.05))
    assert await last.poll() is Outcome.DEAD_LETTERED
    (letter,) = await catalog.dead_letters()
    assert letter.attempts == 3
    assert letter.reason == (
        "gave up after 2 attempts; last error: the worker stopped or died while processing it"
    )


async def test_a_transient_failure_is_retried_and_then_succeeds(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    writer.failures = [NotFound("version v2 has no collection yet")]
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker(claim_idle_seconds=0.05))
    assert await worker.poll() is Outcome.RETRY
    await asyncio.sleep(0.08)
    assert await worker.poll() is Outcome.DONE
    assert await _pending(async_redis, catalog) == 0
    assert await catalog.dead_letters() == []


async def test_reprocessing_an_entry_writes_each_track_once_per_version(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    result = await catalog.submit("t1", {}, data=tone())
    (entry,) = await async_redis.xrange(catalog.keys.stream)
    worker = await _started(make_worker())
    assert await worker.poll() is Outcome.DONE
    # The same job delivered again (at-least-once): nothing new is written.
    await async_redis.xadd(catalog.keys.stream, entry[1])
    assert await worker.poll() is Outcome.DONE
    assert writer.writes == {("v1", "t1"): 1, ("v2", "t1"): 1}
    assert await async_redis.hgetall(catalog.keys.embedded("t1")) == {
        "v1": result.content_hash,
        "v2": result.content_hash,
    }


async def test_a_new_version_gets_only_its_own_rows_on_redelivery(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
    versions: StaticVersions,
):
    await catalog.submit("t1", {}, data=tone())
    (entry,) = await async_redis.xrange(catalog.keys.stream)
    worker = await _started(make_worker())
    assert await worker.poll() is Outcome.DONE
    versions.names.append("v3")
    await async_redis.xadd(catalog.keys.stream, entry[1])
    assert await worker.poll() is Outcome.DONE
    assert writer.writes == {("v1", "t1"): 1, ("v2", "t1"): 1, ("v3", "t1"): 1}


async def test_an_entry_for_replaced_audio_is_stale_and_skipped(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
):
    await catalog.submit("t1", {}, data=tone(freq=440))
    newer = await catalog.submit("t1", {}, data=tone(freq=660))
    worker = await _started(make_worker())
    assert await _drain(worker) == [Outcome.STALE, Outcome.DONE]
    assert writer.writes == {("v1", "t1"): 1, ("v2", "t1"): 1}
    assert (await async_redis.hgetall(catalog.keys.embedded("t1")))["v1"] == newer.content_hash


async def test_a_track_replaced_while_being_written_ends_up_with_the_new_audio(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
    writer: FakeWriter,
):

    await catalog.submit("t1", {}, data=tone(freq=440))
    new_audio = tone(freq=660)
    replaced = False

    async def replace_once(version: str) -> None:
        nonlocal replaced
        if version == "v2" and not replaced:
            replaced = True
            await catalog.submit("t1", {}, data=new_audio)

    embedder.on_call = replace_once
    worker = await _started(make_worker())
    outcomes = await _drain(worker)
    assert outcomes[0] is Outcome.SUPERSEDED and outcomes[1:] == [Outcome.DONE, Outcome.DONE]
    # The worker hands the embedder audio at the version's rate (the fake's 16 kHz).
    expected = fingerprint(resample(*decode(new_audio), 16000))
    for version in ("v1", "v2"):
        np.testing.assert_allclose(writer.rows[(version, "t1")].embedding, expected)
    record = await catalog.get("t1")
    assert await catalog.ingest_states(record) == [("v1", True), ("v2", True)]
    assert await _pending(async_redis, catalog) == 0


async def test_no_active_versions_means_nothing_to_write_and_the_entry_is_acked(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    writer: FakeWriter,
    versions: StaticVersions,
):
    versions.names.clear()
    await catalog.submit("t1", {}, data=tone())
    worker = await _started(make_worker())
    assert await worker.poll() is Outcome.DONE
    assert writer.rows == {} and await _pending(async_redis, catalog) == 0


async def test_stop_finishes_the_current_entry_then_leaves_the_group(
    catalog: Catalog,
    async_redis: aioredis.Redis,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
    writer: FakeWriter,
):
    await catalog.submit("t1", {}, data=tone(freq=440))
    await catalog.submit("t2", {}, data=tone(freq=550))
    embedder.gate = asyncio.Event()
    stop = asyncio.Event()
    worker = make_worker("graceful")
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(embedder.entered_gate.wait(), 5)
    stop.set()  # as SIGTERM does
    embedder.gate.set()
    await asyncio.wait_for(task, 5)
    # t1 was finished and acked; t2 was never taken.
    assert set(writer.rows) == {("v1", "t1"), ("v2", "t1")}
    assert await _pending(async_redis, catalog) == 0
    assert await async_redis.xlen(catalog.keys.stream) == 1
    consumers = await async_redis.xinfo_consumers(catalog.keys.stream, catalog.keys.group)
    assert "graceful" not in [c["name"] for c in consumers]


async def test_consumers_idle_for_long_with_nothing_pending_are_removed(
    catalog: Catalog, async_redis: aioredis.Redis, make_worker: WorkerFactory
):
    worker = await _started(make_worker(consumer_expiry_seconds=0.05))
    await async_redis.xreadgroup(catalog.keys.group, "ghost", {catalog.keys.stream: ">"})
    await asyncio.sleep(0.1)
    assert await worker.poll() is None
    consumers = await async_redis.xinfo_consumers(catalog.keys.stream, catalog.keys.group)
    assert [c["name"] for c in consumers] == ["w1"]


async def test_the_worker_waits_for_redis_and_stops_on_request(make_worker: WorkerFactory):
    dead = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.2
    )
    settings = IngestSettings(consumer="w", backoff_initial_seconds=0.01)
    worker = IngestWorker(dead, FakeEmbedder(), FakeWriter(), StaticVersions(), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 5)
    await dead.aclose()


async def test_versions_that_share_a_rate_get_one_resample_of_the_track(
    catalog: Catalog,
    make_worker: WorkerFactory,
    embedder: FakeEmbedder,
    versions: StaticVersions,
):
    versions.names.append("v3")
    embedder.rates = {"v1": 16000, "v2": 16000, "v3": 8000}
    await catalog.submit("t1", {}, data=tone(seconds=2.0, rate=22050))
    worker = await _started(make_worker())
    assert await worker.poll() is Outcome.DONE
    assert embedder.calls == [("v1", 16000), ("v2", 16000), ("v3", 8000)]
    at_16k, again_16k, at_8k = embedder.audio
    assert again_16k is at_16k  # the same array: resampled once for both versions
    assert len(at_16k) == 32000 and len(at_8k) == 16000


async def test_the_health_endpoint_turns_not_serving_when_the_loop_stalls(
    catalog: Catalog, make_worker: WorkerFactory, embedder: FakeEmbedder
):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.bootstrap import start_health_server
    from services.common.channels import open_channel

    worker = make_worker(stall_seconds=0.5)
    embedder.gate = asyncio.Event()  # the first entry's v2 embedding hangs until released
    await catalog.submit("t1", {}, data=tone(freq=440))
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    health = await start_health_server("127.0.0.1", 0, {"loop": worker.turning}, 0.1)

    async def status() -> int:
        async with open_channel(f"127.0.0.1:{health.port}", api_key="") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            return reply.status

    try:
        assert await status() == health_pb2.HealthCheckResponse.SERVING
        await asyncio.wait_for(embedder.entered_gate.wait(), 10)
        await asyncio.sleep(1.0)  # stuck inside one entry for longer than stall_seconds
        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
        embedder.gate.set()
        await asyncio.sleep(0.5)  # the loop turns again
        assert await status() == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop.set()
        embedder.gate.set()
        await asyncio.wait_for(loop, 10)
        await health.stop()
