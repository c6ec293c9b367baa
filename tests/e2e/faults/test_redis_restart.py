"""Fault flow: redis-server stops (gracefully, with SIGKILL) or freezes under a running stack.

While Redis is down, every call that needs it (SubmitTrack, RecordEvents, SubmitRating,
Recommend) answers UNAVAILABLE within a few seconds instead of hanging. redis-server then
starts again on its port and data dir, and every service and worker answers again without
being restarted (same pids). The tracks, events and ratings acknowledged before the fault
are all still there, the counts before equal the counts after, and a track submitted
after the fault is ingested into both versions.

The SIGKILL variant writes right up to the kill: an acknowledged write must survive the
process dying without a chance to flush (see the fsync note in
``services/common/redis_server.py``). The SIGSTOP variant freezes redis-server instead: it
still accepts connections but never answers, the case where a client hangs unless its
timeouts hold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from services.catalog.client import CatalogClient
from services.catalog.settings import QueueSettings
from services.feedback.client import FeedbackClient
from services.feedback.events import EventType, UserEvent
from services.feedback.settings import FeedbackSettings
from services.ranker.settings import RankerSettings
from tests.e2e.faults.conftest import (
    ANSWER_SECONDS,
    CALL_DEADLINE,
    FaultStack,
    audio_of,
    ranker_calls,
    rating,
    service_calls,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
# A frozen Redis answers nothing, so a call fails once its service's Redis timeout (the
# settings' defaults, which the stack runs with) runs out, once: plus this margin.
_MARGIN = 1.5
FROZEN_LIMITS = {
    "SubmitTrack": QueueSettings.model_fields["redis_timeout_seconds"].default + _MARGIN,
    "RecordEvents": FeedbackSettings.model_fields["redis_timeout_seconds"].default + _MARGIN,
    "SubmitRating": FeedbackSettings.model_fields["redis_timeout_seconds"].default + _MARGIN,
    "Recommend": RankerSettings.model_fields["redis_timeout_seconds"].default + _MARGIN,
}


def _stop(faults: FaultStack) -> None:
    faults.stack.parts["redis"].process.stop()


def _kill(faults: FaultStack) -> None:
    faults.stack.parts["redis"].process.kill()


def _redis_calls(faults: FaultStack, tag: str) -> dict[str, Callable[[], Awaitable[object]]]:
    """One call of each kind that needs Redis; the writes carry ids, so retrying is safe."""
    spare = faults.fresh[0]  # not taken: while its submission is refused it stays fresh
    user = f"{tag}-user"

    async def submit() -> object:
        async with faults.channel(faults.stack.catalog, large=True) as channel:
            return await CatalogClient(channel, CALL_DEADLINE).submit_track(
                spare.track_id, data=audio_of(spare), metadata=spare.metadata
            )

    async def record() -> object:
        async with faults.channel(faults.stack.feedback) as channel:
            event = UserEvent(user, faults.tracks[0], EventType.PLAY, event_id=f"{tag}-down")
            return await FeedbackClient(channel, CALL_DEADLINE).record_events([event])

    async def rate() -> object:
        async with faults.channel(faults.stack.feedback) as channel:
            return await FeedbackClient(channel, CALL_DEADLINE).submit_rating(
                rating(f"{tag}-down", faults.tracks)
            )

    return {
        "SubmitTrack": submit,
        "RecordEvents": record,
        "SubmitRating": rate,
        "Recommend": ranker_calls(faults, user)["Recommend"],
    }


async def _calls_while_down(
    faults: FaultStack, tag: str, limits: dict[str, float] | None = None
) -> dict[str, float]:
    """Each call that needs Redis, made while it is down: UNAVAILABLE, and how fast."""
    return {
        what: await faults.answers_unavailable(what, call, (limits or {}).get(what, ANSWER_SECONDS))
        for what, call in _redis_calls(faults, tag).items()
    }


def _redis_outage(faults: FaultStack, tag: str, fault: Callable[[FaultStack], None]) -> None:
    asyncio.run(faults.settle())
    # Fresh writes right before the fault: the kill gives Redis no chance to flush them.
    asyncio.run(faults.submit(faults.take(2)))
    asyncio.run(faults.write_feedback(tag))
    before = asyncio.run(faults.counts())
    assert (before.tracks, before.events, before.ratings) == faults.acknowledged()
    pids = faults.service_pids()
    redis = faults.stack.parts["redis"].process
    old_redis = redis.proc.pid if redis.proc else None

    fault(faults)
    faults.say(f"{tag}: redis-server (pid {old_redis}) down; calls that need it:")
    times = asyncio.run(_calls_while_down(faults, tag))
    redis.start()  # same port, same data dir: the AOF is replayed
    answered = asyncio.run(faults.wait_answering(service_calls(faults, f"{tag}-user")))
    faults.say_answered(answered, "redis-server is back")

    after = asyncio.run(faults.settle())
    faults.say(f"  just before the fault: {before.line()}")
    faults.say(f"  after, settled:        {after.line()}")
    faults.say(
        f"  tracks before={before.tracks} after={after.tracks}, events before={before.events} "
        f"after={after.events}, ratings before={before.ratings} after={after.ratings}, "
        f"dead letters {after.dead_letters}"
    )
    assert (after.tracks, after.events, after.ratings) == (
        before.tracks,
        before.events,
        before.ratings,
    )
    assert after.rows == dict.fromkeys(after.rows, before.tracks)
    assert after.dead_letters == 0
    assert max(times.values()) < ANSWER_SECONDS
    asyncio.run(faults.check_every_write_is_there())
    # Reconnected by themselves: no service or worker was restarted.
    assert faults.service_pids() == pids

    # And they work, not only answer: a new track goes all the way into both versions.
    asyncio.run(faults.submit(faults.take(1)))
    final = asyncio.run(faults.settle())
    faults.say(f"  a track submitted afterwards is ingested: {final.line()}")
    assert final.tracks == before.tracks + 1


def test_services_answer_unavailable_while_redis_is_stopped_and_lose_nothing(faults):
    _redis_outage(faults, "redis-stop", _stop)


def test_no_acknowledged_write_is_lost_when_redis_is_killed(faults):
    started = time.monotonic()
    _redis_outage(faults, "redis-kill", _kill)
    faults.say(f"  redis kill -9 flow took {time.monotonic() - started:.0f} s")


def test_calls_fail_within_their_redis_timeout_while_redis_is_frozen(faults):
    """A frozen redis-server (SIGSTOP: a stalled disk, a long fork, a partition) accepts
    connections and never answers: each call must still fail once its timeout runs out.

    A write that failed may still be applied when Redis wakes up (it was in the socket):
    UNAVAILABLE means "unknown", so the caller retries with the same ids, and each one is
    then stored exactly once.
    """
    tag = "redis-freeze"
    asyncio.run(faults.settle())
    asyncio.run(faults.submit(faults.take(1)))
    asyncio.run(faults.write_feedback(tag))
    before = asyncio.run(faults.counts())
    assert (before.tracks, before.events, before.ratings) == faults.acknowledged()
    pids = faults.service_pids()
    redis = faults.stack.parts["redis"].process
    assert redis.proc is not None
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        faults.say(f"{tag}: redis-server (pid {redis.proc.pid}) frozen; calls that need it:")
        times = asyncio.run(_calls_while_down(faults, tag, FROZEN_LIMITS))
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    answered = asyncio.run(faults.wait_answering(service_calls(faults, f"{tag}-user")))
    faults.say_answered(answered, "redis-server woke up")

    # The caller's retry of each write that answered UNAVAILABLE.
    calls = _redis_calls(faults, tag)
    spare = faults.take(1)[0]
    submitted = asyncio.run(calls["SubmitTrack"]())
    assert submitted.status.value in ("accepted", "duplicate"), submitted
    faults.tracks.append(spare.track_id)
    newly_recorded = asyncio.run(calls["RecordEvents"]())
    faults.event_ids.add(f"{tag}-down")
    rating_created = asyncio.run(calls["SubmitRating"]())
    faults.rating_ids.add(f"{tag}-down")
    faults.say(
        f"  retried after waking: SubmitTrack {submitted.status.value}, RecordEvents stored "
        f"{newly_recorded} new, SubmitRating created={rating_created} (0/False: the failed "
        "call had been applied after all)"
    )

    after = asyncio.run(faults.settle())
    faults.say(f"  just before the freeze: {before.line()}")
    faults.say(f"  after, settled:         {after.line()}")
    faults.say(
        f"  tracks before={before.tracks} after={after.tracks}, events before={before.events} "
        f"after={after.events}, ratings before={before.ratings} after={after.ratings} (each "
        f"+1: the retried writes, stored once), dead letters {after.dead_letters}"
    )
    assert (after.tracks, after.events, after.ratings) == (
        before.tracks + 1,
        before.events + 1,
        before.ratings + 1,
    )
    assert after.rows == dict.fromkeys(after.rows, after.tracks)
    assert after.dead_letters == 0
    assert all(times[what] < limit for what, limit in FROZEN_LIMITS.items())
    asyncio.run(faults.check_every_write_is_there())
    assert faults.service_pids() == pids
