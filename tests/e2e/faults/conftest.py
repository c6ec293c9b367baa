"""The stack every fault-injection flow runs against, and what they count around a fault.

One real stack for the whole package (``hearby up``'s launch code, API keys on, two tiny
versions, two ingest workers) over a small rendered corpus. Each flow takes fresh tracks
from the corpus, so the flows do not depend on each other's order.

:class:`FaultStack` keeps a ledger of every write the services *acknowledged* (accepted
track submissions, stored event ids, stored rating ids) and counts what the stack holds
(catalog tracks, rows per version, events in the feedback stream, ratings, pending
entries, dead letters), so a flow can show that the numbers before a fault equal the
numbers after it, and that each acknowledged id is still there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from hearby.up import Stack
from services.catalog.client import CatalogClient, channel_options
from services.common.channels import open_channel
from services.common.errors import HearbyError, Unavailable
from services.control.client import ControlClient
from services.feedback.client import FeedbackClient
from services.feedback.events import DEFAULT_PREFIX as FEEDBACK_PREFIX
from services.feedback.events import EventType, UserEvent
from services.feedback.ratings import Preference, Rating, ShownList
from services.ranker.client import RankerClient
from services.vectorstore.client import VectorStoreClient
from tests.e2e.support import (
    CorpusTrack,
    count,
    ingest_status,
    render_corpus,
    running_stack,
    submit_all,
    wait_for,
    wait_ready,
)

VERSIONS = {"fault-a": 31, "fault-b": 32}
DEFAULT_VERSION = "fault-a"
# Enough fresh tracks for every flow (the first batch, then a few per fault).
TRACKS = 30
FIRST_BATCH = 6
# "Not hang": while a dependency is down a call must fail within this many seconds. Not a
# performance target; the clients' own deadline (CALL_DEADLINE) is far longer, so a call
# that waited for the dependency would fail this check, not pass it as a timeout.
ANSWER_SECONDS = 5.0
CALL_DEADLINE = 20.0
# How long the services may take to answer again once the dependency is back.
RECOVER_SECONDS = 90.0
SETTLE_SECONDS = 240.0
# Short worker back-off, so the stream is worked off soon after an outage (the default
# caps it at 30 s); FAST_ENV (tests/e2e/support.py) already shortens reclaiming.
ENV = {"HEARBY_INGEST_BACKOFF_MAX_SECONDS": "4"}
# Parts that the faults restart on purpose: every other process must keep its pid.
RESTARTED_ON_PURPOSE = frozenset({"redis", "embedder"})


@dataclass(frozen=True)
class Counts:
    """What the stack holds at one moment.

    Args:
        tracks: Tracks in the catalog (ListTracks total).
        rows: Rows per version in the vector store.
        events: Entries of the feedback service's event stream.
        ratings: Stored similarity ratings.
        pending: Ingest entries delivered but not acknowledged.
        stream: Ingest entries still in the stream.
        dead_letters: Entries in the ingest dead-letter stream.
    """

    tracks: int
    rows: dict[str, int]
    events: int
    ratings: int
    pending: int
    stream: int
    dead_letters: int

    def line(self) -> str:
        """One line for the test output."""
        rows = ", ".join(f"{v}={n}" for v, n in self.rows.items())
        return (
            f"tracks={self.tracks} rows[{rows}] events={self.events} ratings={self.ratings} "
            f"stream={self.stream} pending={self.pending} dead_letters={self.dead_letters}"
        )


@dataclass
class FaultStack:
    """The running stack, the unused corpus tracks, and the ledger of acknowledged writes.

    Args:
        stack: The running stack.
        fresh: Rendered tracks not submitted yet.
        say: Prints a line to the test output even without ``-s``.
    """

    stack: Stack
    fresh: list[CorpusTrack]
    say: Callable[[str], None] = print
    tracks: list[str] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    rating_ids: set[str] = field(default_factory=set)

    # -- clients ------------------------------------------------------------------------

    def channel(self, address: str, large: bool = False) -> grpc.aio.Channel:
        """A channel with the stack's operator key (``large``: audio-sized messages)."""
        options = channel_options() if large else ()
        return open_channel(address, options=options, api_key=self.stack.api_key)

    def take(self, n: int) -> list[CorpusTrack]:
        """``n`` corpus tracks never submitted before."""
        assert len(self.fresh) >= n, "the corpus is too small for the flows; raise TRACKS"
        taken, self.fresh = self.fresh[:n], self.fresh[n:]
        return taken

    # -- acknowledged writes ------------------------------------------------------------

    async def submit(self, tracks: Sequence[CorpusTrack]) -> None:
        """SubmitTrack for each (all must be ACCEPTED); they join the ledger."""
        await submit_all(self.stack, tracks)
        self.tracks.extend(t.track_id for t in tracks)

    async def write_feedback(self, tag: str, events: int = 4, ratings: int = 2) -> None:
        """Records events and ratings; each one acknowledged joins the ledger.

        The events belong to user ``<tag>-user``, so a Recommend for that user has a history.
        """
        ids = self.tracks
        assert len(ids) >= 5, "write_feedback needs five stored tracks"
        batch = [
            UserEvent(
                f"{tag}-user",
                ids[i % len(ids)],
                EventType.LIKE if i % 2 else EventType.PLAY,
                event_id=f"{tag}-e{i}",
            )
            for i in range(events)
        ]
        async with self.channel(self.stack.feedback) as channel:
            client = FeedbackClient(channel, CALL_DEADLINE)
            assert await client.record_events(batch) == events
            self.event_ids |= {e.event_id for e in batch}
            for i in range(ratings):
                assert await client.submit_rating(rating(f"{tag}-r{i}", ids))
                self.rating_ids.add(f"{tag}-r{i}")

    def acknowledged(self) -> tuple[int, int, int]:
        """How many tracks, events and ratings the services acknowledged so far."""
        return len(self.tracks), len(self.event_ids), len(self.rating_ids)

    # -- counting -----------------------------------------------------------------------

    async def stored_event_ids(self) -> set[str]:
        """The ``event_id`` of every entry in the feedback event stream (read from Redis)."""
        client = aioredis.Redis.from_url(self.stack.redis_url, decode_responses=True)
        try:
            entries = await client.xrange(f"{FEEDBACK_PREFIX}:events")
        finally:
            await client.aclose()
        return {fields.get("event_id", "") for _, fields in entries}

    async def counts(self, rows: bool = True) -> Counts:
        """What the stack holds now (``rows``: the vector store must answer too)."""
        async with self.channel(self.stack.catalog) as channel:
            catalog = CatalogClient(channel, CALL_DEADLINE)
            total = (await catalog.list_tracks(1)).total
            status = await catalog.ingest_status()
        async with self.channel(self.stack.feedback) as channel:
            ratings = await FeedbackClient(channel, CALL_DEADLINE).list_ratings()
        return Counts(
            tracks=total,
            rows={v: await count(self.stack, v) for v in VERSIONS} if rows else {},
            events=len(await self.stored_event_ids()),
            ratings=len(ratings),
            pending=status.pending,
            stream=status.stream_length,
            dead_letters=status.dead_letters,
        )

    async def settle(self, timeout: float = SETTLE_SECONDS) -> Counts:
        """Waits until the stream is worked off and every version holds every track."""
        wanted = len(self.tracks)

        async def settled() -> bool:
            try:
                status = await ingest_status(self.stack)
                rows = [await count(self.stack, v) for v in VERSIONS]
            except HearbyError:  # a service is still coming back
                return False
            return status.stream_length == 0 and status.pending == 0 and rows == [wanted] * 2

        await wait_for(settled, timeout, f"{wanted} tracks in every version, nothing pending", 0.5)
        return await self.counts()

    async def check_every_write_is_there(self) -> None:
        """Every acknowledged track, event and rating is stored; each track once per version."""
        ids = sorted(self.tracks)
        async with self.channel(self.stack.catalog) as channel:
            stored = [t.track_id async for t in CatalogClient(channel, CALL_DEADLINE).all_tracks()]
        assert stored == ids, "the catalog lost or gained tracks"
        async with self.channel(self.stack.vectorstore) as channel:
            vectors = VectorStoreClient(channel, CALL_DEADLINE)
            for version in VERSIONS:
                got = await vectors.get(version, ids, include_embeddings=True)
                assert not got.missing, (version, got.missing)
                assert sorted(r.track_id for r in got.records) == ids
                # Every row of the collection, by a search wider than the catalog: one per id.
                query = got.records[0].embedding
                hits = await vectors.search(version, 4 * len(ids), embedding=query)
                assert sorted(h.track_id for h in hits.hits) == ids, f"duplicate rows in {version}"
        missing_events = self.event_ids - await self.stored_event_ids()
        assert not missing_events, f"acknowledged events lost: {sorted(missing_events)}"
        async with self.channel(self.stack.feedback) as channel:
            ratings = await FeedbackClient(channel, CALL_DEADLINE).list_ratings()
        missing_ratings = self.rating_ids - {r.rating_id for r in ratings}
        assert not missing_ratings, f"acknowledged ratings lost: {sorted(missing_ratings)}"

    # -- processes ----------------------------------------------------------------------

    def service_pids(self) -> dict[str, int]:
        """Pid of every service, worker and dashboard process (not redis, not Triton)."""
        pids = {}
        for name, part in self.stack.parts.items():
            if name not in RESTARTED_ON_PURPOSE:
                assert part.process.proc is not None and part.process.alive(), name
                pids[name] = part.process.proc.pid
        return pids

    # -- answers ------------------------------------------------------------------------

    async def answers_unavailable(
        self, what: str, call: Callable[[], Awaitable[object]], limit: float = ANSWER_SECONDS
    ) -> float:
        """Asserts ``call()`` fails with UNAVAILABLE within ``limit`` s; the seconds taken."""
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            await call()
        elapsed = time.monotonic() - started
        self.say(f"  {what}: UNAVAILABLE after {elapsed:.2f} s ({raised.value.message[:100]})")
        assert elapsed < limit, f"{what} took {elapsed:.1f} s to answer (limit {limit:.1f} s)"
        return elapsed

    async def wait_answering(
        self, calls: dict[str, Callable[[], Awaitable[object]]], timeout: float = RECOVER_SECONDS
    ) -> dict[str, float]:
        """Retries each call until it succeeds (in turn); seconds from now until each did."""
        started = time.monotonic()
        answered: dict[str, float] = {}
        for what, call in calls.items():

            async def answers(call: Callable[[], Awaitable[object]] = call) -> bool:
                try:
                    await call()
                except HearbyError as exc:
                    if exc.status not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                        raise
                    return False
                return True

            await wait_for(answers, timeout, f"{what} to answer again", every=0.25)
            answered[what] = time.monotonic() - started
        return answered

    def say_answered(self, answered: dict[str, float], since: str) -> None:
        """Prints when each service answered again."""
        each = ", ".join(f"{what} {seconds:.1f} s" for what, seconds in answered.items())
        self.say(f"  answering again after {since}: {each}")


def rating(rating_id: str, ids: Sequence[str]) -> Rating:
    """A blind rating of the two versions' neighbours of ``ids[0]``."""
    first, second = VERSIONS
    return Rating(
        rating_id=rating_id,
        rater_id="fault-rater",
        trial_id=f"trial-{rating_id}",
        seed_track_id=ids[0],
        left=ShownList(first, tuple(ids[1:4])),
        right=ShownList(second, tuple(ids[2:5])),
        preference=Preference.LEFT,
    )


def ranker_calls(
    fs: FaultStack, user_id: str, audio: bytes | None = None
) -> dict[str, Callable[[], Awaitable[object]]]:
    """Named zero-argument calls of the ranker (Recommend; Similar by id and by audio)."""

    async def recommend() -> object:
        async with fs.channel(fs.stack.ranker) as channel:
            return await RankerClient(channel, CALL_DEADLINE).recommend(user_id, 5)

    async def similar() -> object:
        async with fs.channel(fs.stack.ranker) as channel:
            return await RankerClient(channel, CALL_DEADLINE).similar(5, track_id=fs.tracks[0])

    async def similar_audio() -> object:
        async with fs.channel(fs.stack.ranker, large=True) as channel:
            return await RankerClient(channel, CALL_DEADLINE).similar(5, audio=audio)

    calls = {"Recommend": recommend, "Similar(track_id)": similar}
    if audio is not None:
        calls["Similar(audio)"] = similar_audio
    return calls


def service_calls(fs: FaultStack, user_id: str) -> dict[str, Callable[[], Awaitable[object]]]:
    """A cheap call of every service, to see that each one answers."""

    async def catalog() -> object:
        async with fs.channel(fs.stack.catalog) as channel:
            return await CatalogClient(channel, CALL_DEADLINE).ingest_status()

    async def feedback() -> object:
        async with fs.channel(fs.stack.feedback) as channel:
            return await FeedbackClient(channel, CALL_DEADLINE).list_ratings()

    async def control() -> object:
        async with fs.channel(fs.stack.control) as channel:
            return await ControlClient(channel, CALL_DEADLINE).list_versions()

    async def vectorstore() -> object:
        return await count(fs.stack, DEFAULT_VERSION)

    return {
        "catalog": catalog,
        "feedback": feedback,
        "control": control,
        "vectorstore": vectorstore,
        **ranker_calls(fs, user_id),
    }


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    """The shared stack with its first tracks ingested and a default version set."""
    tmp = tmp_path_factory.mktemp("faults")
    corpus = render_corpus(tmp / "corpus", TRACKS, seed=23)
    assert len(corpus) == TRACKS
    for stack in running_stack(tmp, VERSIONS, workers=2, env=ENV, auth=True):
        fs = FaultStack(stack, corpus)
        asyncio.run(_fill(fs))
        yield fs


async def _fill(fs: FaultStack) -> None:
    await wait_ready(fs.stack, list(VERSIONS))
    assert await fs.stack.ensure_default(DEFAULT_VERSION) == DEFAULT_VERSION
    await fs.submit(fs.take(FIRST_BATCH))
    await fs.settle()


@pytest.fixture
def faults(fault_stack: FaultStack, capsys: pytest.CaptureFixture[str]) -> Iterator[FaultStack]:
    """The shared stack, settled, printing to the test output; checked healthy afterwards."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[faults] {line}" if not line.startswith("  ") else line, flush=True)

    fault_stack.say = say
    yield fault_stack
    # A flow that failed half-way may leave its part down: bring it back for the next flow.
    stack = fault_stack.stack
    dead = [part.name for part in stack.dead_parts()]
    for name in dead:
        if name in RESTARTED_ON_PURPOSE:  # Stack.restart refuses these; same port and data
            stack.parts[name].process.start()
        else:
            stack.restart(name)
    assert not dead, f"parts left dead by the flow: {dead}"


def audio_of(track: CorpusTrack) -> bytes:
    """The encoded file of a corpus track."""
    return Path(track.path).read_bytes()
