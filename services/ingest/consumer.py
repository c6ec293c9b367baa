"""The ingest worker's stream loop: read a job, embed it with every active version, ack.

Delivery is at-least-once and every write is idempotent:

- An entry is acknowledged (XACK, and deleted from the stream in the same script) only
  after every active version holds the track's embedding. A worker that dies before its
  ack leaves the entry pending; once it has been idle for ``claim_idle_seconds`` another
  worker (or the same one, restarted) takes it over with XAUTOCLAIM. A restarted worker
  with its old consumer name resumes its own pending entries at once.
- Per-version progress is recorded after each upsert (``P:track:<id>:embedded``), so a
  re-delivered entry writes only the versions that were missing; the vector store's
  upsert is keyed by track id, so even a repeated write leaves one row.
- Poison entries (undecodable audio, malformed fields) are moved to the dead-letter
  stream at once, with the reason; retryable failures stay pending and are retried, and
  after ``max_attempts`` deliveries they are dead-lettered with the last error. Moving to
  the dead-letter stream and acking is one Lua script, so an entry is never both lost and
  never in both places.
- A delivery that failed because a dependency was down (Redis, the vector store, the
  embedder, or an active version the embedder lost in a restart) is not counted against
  ``max_attempts`` (``P:ingest:failures`` field ``<entry id>:outages``): entries wait for
  as long as the outage lasts, then go through, instead of being dead-lettered by any
  outage longer than a few claim timeouts.
- SIGTERM finishes the current entry, then stops.

Dependencies are typed Protocols (:class:`TrackEmbedder`, :class:`VectorWriter`,
:class:`~services.catalog.tracks.ActiveVersions`); :func:`serve` plugs in the real clients.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram

from services.catalog.audio_store import read_audio
from services.catalog.server import connect_redis
from services.catalog.tracks import (
    ActiveVersions,
    CatalogKeys,
    IngestJob,
    RegistryVersions,
    TrackRecord,
    ensure_group,
    now,
)
from services.common.audio import resample
from services.common.bootstrap import start_health_server
from services.common.channels import open_channel
from services.common.errors import NotFound, Unavailable
from services.common.metrics import start_metrics_server
from services.control.client import ControlClient
from services.embedder.client import EmbedderClient
from services.embedder.interface import TrackEmbedder
from services.embedder.settings import EmbedderSettings
from services.ingest import handlers
from services.ingest.settings import IngestSettings
from services.vectorstore.client import VectorStoreClient
from services.vectorstore.records import VectorRecord

logger = logging.getLogger(__name__)

ENTRIES = Counter(
    "hearby_ingest_entries_total",
    "Ingest stream entries handled, by outcome (done, stale, superseded, dead_lettered, retry).",
    ["outcome"],
)
ENTRY_SECONDS = Histogram(
    "hearby_ingest_entry_seconds",
    "Wall time to handle one ingest entry (decode, embed with every version, upsert, ack).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# Ack an entry, delete it from the stream and forget its failures; if the ack happened
# here (not already by another worker), optionally XADD a follow-up entry (a dead letter,
# or a re-queued job) in the same atomic step.
# KEYS: stream, failures hash, follow-up stream. ARGV: group, entry id, field/value pairs.
_ACK_SCRIPT = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2], ARGV[2] .. ':outages')
if acked == 1 and #ARGV > 2 then
  return redis.call('XADD', KEYS[3], '*', unpack(ARGV, 3))
end
return false
"""


class VectorWriter(Protocol):
    """Writes rows into a version's collection (``services.vectorstore.client``)."""

    async def upsert(self, version: str, records: Sequence[VectorRecord]) -> int:
        """Inserts or replaces rows by track id; returns how many were written.

        Raises:
            Unavailable: The vector store cannot be reached (retryable).
            NotFound: The version has no collection yet (retryable).
            InvalidArgument: A row is malformed, e.g. a dimension mismatch (poison).
        """
        ...


class Outcome(enum.StrEnum):
    """What happened to an entry."""

    DONE = "done"  # every active version holds the track's embedding; acked
    STALE = "stale"  # the track has other audio now (a newer entry covers it); acked
    SUPERSEDED = "superseded"  # replaced while being written; acked, a forced job queued
    DEAD_LETTERED = "dead_lettered"  # moved to the dead-letter stream; acked
    RETRY = "retry"  # a retryable failure; left pending for a later delivery


@dataclass(frozen=True)
class Delivery:
    """One delivered stream entry.

    Args:
        entry_id: Stream entry id.
        fields: Its fields; empty when the entry was deleted from the stream meanwhile.
        attempts: Times it has been delivered, this delivery included.
    """

    entry_id: str
    fields: dict[str, str]
    attempts: int


class IngestWorker:
    """One consumer in the ingest group.

    Args:
        client: Async Redis client (``decode_responses=True``) whose read timeout exceeds
            ``settings.block_seconds``.
        embedder: Embeds a track with a version.
        writer: Upserts rows into a version's collection.
        versions: The active versions.
        settings: Attempts, timings and the consumer name.
        keys: Redis key names (default: from ``settings``).
        read_audio: Reads a stored file by URI (blocking; run in a thread).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        embedder: TrackEmbedder,
        writer: VectorWriter,
        versions: ActiveVersions,
        settings: IngestSettings,
        keys: CatalogKeys | None = None,
        read_audio: Callable[[str], bytes] = read_audio,
    ) -> None:
        self._redis = client
        self._read_audio = read_audio
        self._embedder = embedder
        self._writer = writer
        self._versions = versions
        self._settings = settings
        self.keys = keys or CatalogKeys(settings.key_prefix, settings.ingest_group)
        self.name = settings.consumer_name
        self._ack_script = client.register_script(_ACK_SCRIPT)
        self._backlog: collections.deque[Delivery] = collections.deque()
        self._claim_cursor = "0-0"
        self._next_reclaim = 0.0
        self.last_turn = time.monotonic()

    # -- the loop -----------------------------------------------------------------------

    async def turning(self) -> None:
        """Health probe: passes while the loop has turned within ``stall_seconds``.

        A turn is one entry handled, one empty read (``block_seconds``) or one back-off
        pause; an outage of Redis or the vector store keeps the loop turning (it waits
        and retries), so only a worker that is really stuck fails.

        Raises:
            RuntimeError: The loop has not turned for ``stall_seconds``.
        """
        idle = time.monotonic() - self.last_turn
        if idle > self._settings.stall_seconds:
            raise RuntimeError(f"the consume loop has not turned for {idle:.0f} s")

    async def start(self) -> None:
        """Joins the group and queues this consumer's own pending entries (a restart)."""
        await ensure_group(self._redis, self.keys)
        reply = await self._redis.xreadgroup(
            self.keys.group, self.name, {self.keys.stream: "0"}, count=10_000
        )
        for _stream, entries in reply:
            for entry_id, fields in entries:
                attempts = await self._attempts(entry_id)
                self._backlog.append(Delivery(entry_id, fields or {}, attempts))
        if self._backlog:
            logger.info(
                "%s resumes %d entries it had not acknowledged", self.name, len(self._backlog)
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Processes entries until ``stop`` is set; the current entry is always finished.

        Redis outages and retryable failures pause the loop with exponential backoff
        instead of ending it.
        """
        await self._until_redis(stop, self.start)
        logger.info("%s consuming %s", self.name, self.keys.stream)
        failures = 0
        while not stop.is_set():
            self.last_turn = time.monotonic()
            try:
                outcome = await self.poll()
            except Exception as exc:  # noqa: BLE001 - Redis down: back off, then go on
                outcome = Outcome.RETRY
                logger.warning("%s: reading the stream failed: %s", self.name, exc)
            failures = failures + 1 if outcome is Outcome.RETRY else 0
            if failures:
                await _sleep(self._backoff(failures), stop)
        await self._leave()

    async def poll(self) -> Outcome | None:
        """Takes one entry (own backlog, reclaimable, or new) and handles it.

        Returns:
            The entry's outcome, or None when nothing arrived within ``block_seconds``.
        """
        delivery = await self._next_delivery()
        if delivery is None:
            return None
        started = time.perf_counter()
        outcome = await self.handle(delivery)
        ENTRIES.labels(outcome.value).inc()
        ENTRY_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _next_delivery(self) -> Delivery | None:
        if self._backlog:
            return self._backlog.popleft()
        if time.monotonic() >= self._next_reclaim:
            claimed = await self._reclaim()
            if claimed is not None:
                return claimed
        reply = await self._redis.xreadgroup(
            self.keys.group,
            self.name,
            {self.keys.stream: ">"},
            count=1,
            block=max(1, int(self._settings.block_seconds * 1000)),
        )
        for _stream, entries in reply:
            for entry_id, fields in entries:
                # First delivery of a new entry: XREADGROUP ">" never hands out a pending one.
                return Delivery(entry_id, fields or {}, 1)
        return None

    async def _reclaim(self) -> Delivery | None:
        """Takes over one entry idle for longer than ``claim_idle_seconds`` (XAUTOCLAIM).

        Scans the group's pending list a little per call, resuming from a cursor; after a
        full pass it rests for ``reclaim_interval_seconds``.
        """
        idle_ms = int(self._settings.claim_idle_seconds * 1000)
        cursor, entries, *_deleted = await self._redis.xautoclaim(
            self.keys.stream,
            self.keys.group,
            self.name,
            min_idle_time=idle_ms,
            start_id=self._claim_cursor,
            count=1,
        )
        self._claim_cursor = cursor
        if cursor == "0-0":
            self._next_reclaim = time.monotonic() + self._settings.reclaim_interval_seconds
            await self._expire_consumers()
        if not entries:
            return None
        entry_id, fields = entries[0]
        attempts = await self._attempts(entry_id)
        logger.info(
            "%s reclaimed %s (delivery %d)",
            self.name,
            entry_id,
            attempts,
            extra={"entry_id": entry_id},
        )
        return Delivery(entry_id, fields or {}, attempts)

    async def _attempts(self, entry_id: str) -> int:
        rows = await self._redis.xpending_range(
            self.keys.stream, self.keys.group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else 1

    # -- one entry ----------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> Outcome:
        """Processes one delivered entry and acks it, dead-letters it, or leaves it pending.

        Raises:
            redis.exceptions.ConnectionError: Redis went away while acking (the entry
                stays pending and is retried after ``claim_idle_seconds``).
        """
        if not delivery.fields:
            await self._ack(delivery.entry_id)
            return Outcome.STALE
        try:
            job = handlers.parse_job(delivery.fields)
        except handlers.PoisonEntry as exc:
            job = handlers.job_of(delivery.fields)
            return await self._dead_letter(delivery, job, str(exc))
        limit = self._settings.max_attempts
        # Deliveries that met an outage do not count (see the module docstring).
        outages = await self._redis.hget(self.keys.failures, _outages(delivery.entry_id))
        attempts = delivery.attempts - int(outages or 0)
        if attempts > limit:
            # Its workers kept dying or stopping before finishing it (or it failed each time).
            last = await self._redis.hget(self.keys.failures, delivery.entry_id)
            reason = handlers.gave_up_reason(attempts - 1, last)
            return await self._dead_letter(delivery, job, reason)
        try:
            return await self._ingest(delivery, job)
        except Exception as exc:  # noqa: BLE001 - every failure is classified below
            failure = handlers.classify_failure(exc)
        if failure.poison:
            return await self._dead_letter(delivery, job, failure.reason)
        if failure.outage:
            return await self._wait_out(delivery, job, failure.reason)
        if attempts >= limit:
            reason = handlers.gave_up_reason(attempts, failure.reason)
            return await self._dead_letter(delivery, job, reason)
        await self._redis.hset(self.keys.failures, delivery.entry_id, failure.reason)
        logger.warning(
            "%s: %s (track %s) failed on attempt %d of %d, will retry: %s",
            self.name,
            delivery.entry_id,
            job.track_id,
            delivery.attempts,
            limit,
            failure.reason,
            extra={"entry_id": delivery.entry_id, "track_id": job.track_id},
        )
        return Outcome.RETRY

    async def _wait_out(self, delivery: Delivery, job: IngestJob, reason: str) -> Outcome:
        """Leaves the entry pending for after the outage, without using up an attempt."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.failures, delivery.entry_id, reason)
            pipe.hincrby(self.keys.failures, _outages(delivery.entry_id), 1)
            await pipe.execute()
        logger.warning(
            "%s: %s (track %s) waits for a dependency (delivery %d, not counted): %s",
            self.name,
            delivery.entry_id,
            job.track_id,
            delivery.attempts,
            reason,
            extra={"entry_id": delivery.entry_id, "track_id": job.track_id},
        )
        return Outcome.RETRY

    async def _ingest(self, delivery: Delivery, job: IngestJob) -> Outcome:
        record = await self._record(job.track_id)
        if handlers.is_stale(job, record):
            await self._ack(delivery.entry_id)
            logger.info(
                "%s: %s is stale (track %s has other audio now)",
                self.name,
                delivery.entry_id,
                job.track_id,
                extra={"entry_id": delivery.entry_id, "track_id": job.track_id},
            )
            return Outcome.STALE
        assert record is not None
        active = await self._versions.active()
        embedded = await self._redis.hgetall(self.keys.embedded(job.track_id))
        todo = handlers.versions_to_embed(active, embedded, job)
        if todo:
            data = await asyncio.to_thread(self._read_audio, job.audio_uri)
            audio, rate = await asyncio.to_thread(handlers.decode_audio, data, job.track_id)
            at_rate: dict[int, np.ndarray] = {}
            for version in todo:
                with _lost_by_the_embedder(version):
                    target = await self._embedder.sample_rate(version)
                    if target not in at_rate:
                        # Versions usually share a rate: resample once per rate, not once
                        # per version (25-50 ms for a 3-minute track, ~2 % of embedding it).
                        at_rate[target] = await asyncio.to_thread(resample, audio, rate, target)
                    embedded_track = await self._embedder.embed_track(
                        version, at_rate[target], target
                    )
                row = handlers.track_vector(record, embedded_track.embedding)
                await self._writer.upsert(version, [row])
                # Recorded per version, so a redelivery skips what is already written.
                await self._redis.hset(self.keys.embedded(job.track_id), version, job.content_hash)
            current = await self._record(job.track_id)
            if current is not None and handlers.is_stale(job, current):
                return await self._supersede(delivery, current)
        await self._ack(delivery.entry_id)
        logger.info(
            "%s: %s done (track %s, wrote %s)",
            self.name,
            delivery.entry_id,
            job.track_id,
            ", ".join(todo) or "nothing new",
            extra={"entry_id": delivery.entry_id, "track_id": job.track_id},
        )
        return Outcome.DONE

    async def _supersede(self, delivery: Delivery, current: TrackRecord) -> Outcome:
        """The track got new audio while this entry's (older) rows were being written.

        Those writes may have landed after the newer audio's, so the newer job is queued
        again with ``force``: it rewrites every version whatever the progress marks say.
        """
        job = IngestJob(current.track_id, current.content_hash, current.audio_uri, force=True)
        new_id = await self._ack(delivery.entry_id, self.keys.stream, job.to_fields())
        logger.info(
            "%s: track %s was replaced during %s; re-queued its new audio as %s",
            self.name,
            current.track_id,
            delivery.entry_id,
            new_id,
            extra={"entry_id": delivery.entry_id, "track_id": current.track_id},
        )
        return Outcome.SUPERSEDED

    async def _dead_letter(self, delivery: Delivery, job: IngestJob, reason: str) -> Outcome:
        letter = handlers.dead_letter(job, delivery.entry_id, reason, delivery.attempts, now())
        dead_id = await self._ack(delivery.entry_id, self.keys.dead_letters, letter.to_fields())
        logger.warning(
            "%s: %s (track %s) dead-lettered as %s after %d attempt(s): %s",
            self.name,
            delivery.entry_id,
            job.track_id,
            dead_id or "(already handled by another worker)",
            delivery.attempts,
            reason,
            extra={"entry_id": delivery.entry_id, "track_id": job.track_id},
        )
        return Outcome.DEAD_LETTERED

    async def _ack(
        self, entry_id: str, follow_stream: str = "", follow_fields: dict[str, str] | None = None
    ) -> str | None:
        """Acks and deletes the entry; XADDs the follow-up entry in the same atomic step.

        Returns:
            The follow-up entry's id; None without one, or when another worker had
            acked the entry already (then nothing is added: it was handled).
        """
        args = [self.keys.group, entry_id]
        for name, value in (follow_fields or {}).items():
            args += [name, value]
        keys = [self.keys.stream, self.keys.failures, follow_stream or self.keys.stream]
        return await self._ack_script(keys=keys, args=args)

    async def _record(self, track_id: str) -> TrackRecord | None:
        data = await self._redis.hgetall(self.keys.track(track_id))
        return TrackRecord.from_hash(data) if data else None

    # -- housekeeping -------------------------------------------------------------------

    async def _expire_consumers(self) -> None:
        """Removes consumers that have nothing pending and have not read for a long time."""
        expiry_ms = self._settings.consumer_expiry_seconds * 1000
        for consumer in await self._redis.xinfo_consumers(self.keys.stream, self.keys.group):
            if (
                consumer["name"] != self.name
                and int(consumer["pending"]) == 0
                and int(consumer["idle"]) > expiry_ms
            ):
                await self._redis.xgroup_delconsumer(
                    self.keys.stream, self.keys.group, consumer["name"]
                )
                logger.info("removed idle consumer %s from the group", consumer["name"])

    async def _leave(self) -> None:
        """On a clean stop, leaves the group if nothing is pending on this consumer."""
        try:
            for consumer in await self._redis.xinfo_consumers(self.keys.stream, self.keys.group):
                if consumer["name"] == self.name and int(consumer["pending"]) == 0:
                    await self._redis.xgroup_delconsumer(
                        self.keys.stream, self.keys.group, self.name
                    )
        except Exception as exc:  # noqa: BLE001 - best effort; expiry removes it later
            logger.info("%s could not leave the group: %s", self.name, exc)
        logger.info("%s stopped", self.name)

    def _backoff(self, failures: int) -> float:
        initial = self._settings.backoff_initial_seconds
        return min(initial * 2 ** (failures - 1), self._settings.backoff_max_seconds)

    async def _until_redis(self, stop: asyncio.Event, step: Callable[[], Awaitable[None]]) -> None:
        """Runs ``step`` until it succeeds (Redis may come up after the worker)."""
        failures = 0
        while not stop.is_set():
            self.last_turn = time.monotonic()
            try:
                await step()
                return
            except Exception as exc:  # noqa: BLE001 - retried with backoff
                failures += 1
                logger.warning("%s cannot join the group yet: %s", self.name, exc)
                await _sleep(self._backoff(failures), stop)


def _outages(entry_id: str) -> str:
    """The failures-hash field counting an entry's deliveries that met an outage."""
    return f"{entry_id}:outages"


@contextlib.contextmanager
def _lost_by_the_embedder(version: str) -> Iterator[None]:
    """NotFound from the embedder for an active version becomes Unavailable (an outage).

    An active (BACKFILLING or READY) version was loaded before it became active, so the
    embedder not knowing it means the embedder restarted; the control service's
    reconciler loads it again within ``reconcile_interval_seconds`` plus the load time.
    """
    try:
        yield
    except NotFound as exc:
        raise Unavailable(
            f"version {version!r} is active but not loaded in the embedder (restarted?); "
            f"waiting for the control service to load it again ({exc.message})"
        ) from exc


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    """Sleeps ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_until_signalled(worker: IngestWorker) -> None:
    """Runs ``worker`` until SIGTERM or SIGINT; the entry in progress is finished first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.run(stop)


async def serve(settings: IngestSettings) -> None:
    """Runs one worker with the real clients until SIGTERM/SIGINT, then closes them.

    The embedder is Triton at ``HEARBY_EMBEDDER_URL``, the vector store and the control
    service are at the addresses in ``settings``.
    """
    client = connect_redis(settings, extra_read_seconds=settings.block_seconds)
    control = open_channel(settings.control_address)
    vectorstore = open_channel(settings.vectorstore_address)
    embedder = EmbedderClient.from_settings(EmbedderSettings())
    worker = IngestWorker(
        client,
        embedder,
        VectorStoreClient(vectorstore, settings.rpc_timeout_seconds),
        RegistryVersions(ControlClient(control, settings.rpc_timeout_seconds)),
        settings,
    )
    metrics = start_metrics_server(settings.metrics_port, settings.host)
    health = None
    if settings.health_port is not None:
        health = await start_health_server(
            settings.host, settings.health_port, {"loop": worker.turning}
        )
    try:
        await run_until_signalled(worker)
    finally:
        if health is not None:
            await health.stop()
        await embedder.close()
        await vectorstore.close()
        await control.close()
        await client.aclose()
        if metrics is not None:
            metrics[0].shutdown()
