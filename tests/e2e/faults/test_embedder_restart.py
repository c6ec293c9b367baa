"""Fault flow: the embedder (Triton) stops and starts again under a running stack.

While Triton is down, a Similar with uploaded audio answers UNAVAILABLE within a few
seconds, and tracks submitted meanwhile are accepted by the catalog and wait in the ingest
stream: their entries are retried, never dead-lettered because the embedder was down.
Triton then starts again (empty: explicit model control loads nothing by itself) and the
control service's reconciler loads the READY versions back. Until a version is loaded
again, Similar with audio answers UNAVAILABLE too (not NOT_FOUND: the version exists, the
embedder lost it). In the end every submitted track is embedded in both versions exactly
once, no service was restarted, and the events and ratings from before are all there.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.common.errors import HearbyError
from tests.e2e.faults.conftest import (
    ANSWER_SECONDS,
    FaultStack,
    audio_of,
    ranker_calls,
    service_calls,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
# Longer than the workers need to use up their attempts at an entry (HEARBY_INGEST_MAX_ATTEMPTS
# = 3 deliveries, one per 5 s claim timeout): an outage this long dead-lettered entries before.
OUTAGE_SECONDS = 20.0
SUBMITTED_DURING = 4


async def _similar_audio_until_back(faults: FaultStack, audio: bytes) -> tuple[float, list[str]]:
    """Calls Similar(audio) until it succeeds; every failure must be a fast UNAVAILABLE.

    Returns:
        Seconds until it succeeded, and the status of each failed call.
    """
    similar = ranker_calls(faults, "embedder-user", audio)["Similar(audio)"]
    started = time.monotonic()
    failures: list[str] = []
    while True:
        call_started = time.monotonic()
        try:
            await similar()
            return time.monotonic() - started, failures
        except HearbyError as exc:
            elapsed = time.monotonic() - call_started
            failures.append(exc.status)
            assert exc.status == "UNAVAILABLE", f"Similar(audio) answered {exc.status}: {exc}"
            assert elapsed < ANSWER_SECONDS, f"Similar(audio) took {elapsed:.1f} s to fail"
        assert time.monotonic() - started < 300, "the embedder never came back"
        await asyncio.sleep(0.5)


def test_an_embedder_restart_dead_letters_nothing_and_every_track_is_embedded_once(
    faults: FaultStack,
) -> None:
    asyncio.run(faults.settle())
    asyncio.run(faults.write_feedback("embedder"))
    before = asyncio.run(faults.counts())
    assert (before.tracks, before.events, before.ratings) == faults.acknowledged()
    pids = faults.service_pids()
    embedder = faults.stack.parts["embedder"].process
    seed = faults.fresh[-1]  # never submitted: an uploaded seed, not a catalog track

    embedder.stop(40)
    down_at = time.monotonic()
    faults.say("embedder: Triton stopped; calls that need it:")
    similar = ranker_calls(faults, "embedder-user", audio_of(seed))["Similar(audio)"]
    answer = asyncio.run(faults.answers_unavailable("Similar(audio)", similar))
    during = faults.take(SUBMITTED_DURING)
    asyncio.run(faults.submit(during))  # the catalog does not need the embedder
    # Calls that do not need the embedder keep working meanwhile.
    still = service_calls(faults, "embedder-user")
    for name in ("Recommend", "Similar(track_id)", "catalog"):
        asyncio.run(still[name]())
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    mid = asyncio.run(faults.counts())
    faults.say(f"  after {time.monotonic() - down_at:.0f} s down: {mid.line()}")
    assert mid.dead_letters == 0, "entries were dead-lettered because the embedder was down"
    assert mid.stream + mid.pending >= SUBMITTED_DURING, "the entries must wait, not vanish"

    embedder.start()
    faults.say(f"  Triton serving again {time.monotonic() - down_at:.0f} s after the stop")
    back, failures = asyncio.run(_similar_audio_until_back(faults, audio_of(seed)))
    faults.say(
        f"  Similar(audio) answers {back:.1f} s after Triton started "
        f"({len(failures)} UNAVAILABLE answers meanwhile, none slower than {ANSWER_SECONDS} s)"
    )
    after = asyncio.run(faults.settle())
    wanted = before.tracks + SUBMITTED_DURING
    faults.say(f"  just before the fault: {before.line()}")
    faults.say(f"  after, settled:        {after.line()}")
    faults.say(
        f"  tracks before={before.tracks} (+{SUBMITTED_DURING} submitted while Triton was "
        f"down) after={after.tracks}, rows after={after.rows}, events before={before.events} "
        f"after={after.events}, ratings before={before.ratings} after={after.ratings}, "
        f"dead letters {after.dead_letters}; Similar(audio) UNAVAILABLE in {answer:.2f} s"
    )
    assert (after.tracks, after.events, after.ratings) == (wanted, before.events, before.ratings)
    assert after.rows == dict.fromkeys(after.rows, wanted)
    assert after.dead_letters == 0
    asyncio.run(faults.check_every_write_is_there())
    assert faults.service_pids() == pids
