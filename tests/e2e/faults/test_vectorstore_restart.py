"""Fault flow: the vector store (Milvus Lite) goes down and is restarted under a running stack.

While it is down, the ranker's Similar and Recommend answer UNAVAILABLE within a few
seconds, and tracks submitted meanwhile are accepted and wait in the ingest stream
(retried, never dead-lettered). The vector store is then restarted
(``Stack.restart("vectorstore")``, as ``hearby up``'s supervisor does, over the same data
dir); the ranker and the workers reconnect by themselves, the rows written before the
fault are all there, and the tracks submitted meanwhile are ingested into both versions.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.faults.conftest import (
    ANSWER_SECONDS,
    FaultStack,
    ranker_calls,
    service_calls,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
# Longer than the workers need to use up their attempts at an entry (three deliveries, one
# per 5 s claim timeout), like a slow restart of a large collection.
OUTAGE_SECONDS = 15.0
SUBMITTED_DURING = 3


def test_a_vectorstore_restart_answers_unavailable_meanwhile_and_loses_nothing(
    faults: FaultStack,
) -> None:
    asyncio.run(faults.settle())
    asyncio.run(faults.write_feedback("vectorstore"))
    before = asyncio.run(faults.counts())
    assert (before.tracks, before.events, before.ratings) == faults.acknowledged()
    pids = faults.service_pids()
    part = faults.stack.parts["vectorstore"]
    old_pid = pids.pop("vectorstore")

    part.process.stop()
    down_at = time.monotonic()
    faults.say(f"vectorstore: stopped (pid {old_pid}); the ranker meanwhile:")
    times = {
        what: asyncio.run(faults.answers_unavailable(what, call))
        for what, call in ranker_calls(faults, "vectorstore-user").items()
    }
    during = faults.take(SUBMITTED_DURING)
    asyncio.run(faults.submit(during))  # the catalog does not need the vector store
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    mid = asyncio.run(faults.counts(rows=False))
    faults.say(f"  after {time.monotonic() - down_at:.0f} s down: {mid.line()}")
    assert mid.dead_letters == 0, "entries were dead-lettered because the vector store was down"
    assert mid.stream + mid.pending >= SUBMITTED_DURING, "the entries must wait, not vanish"

    new = faults.stack.restart("vectorstore")
    assert new.process.proc is not None and new.process.proc.pid != old_pid
    down_for = time.monotonic() - down_at
    faults.say(f"  restarted (pid {new.process.proc.pid}), {down_for:.0f} s after the stop")
    answered = asyncio.run(faults.wait_answering(service_calls(faults, "vectorstore-user")))
    faults.say_answered(answered, "the restart")

    after = asyncio.run(faults.settle())
    wanted = before.tracks + SUBMITTED_DURING
    faults.say(f"  just before the fault: {before.line()}")
    faults.say(f"  after, settled:        {after.line()}")
    faults.say(
        f"  tracks before={before.tracks} (+{SUBMITTED_DURING} submitted while it was down) "
        f"after={after.tracks}, rows before={before.rows} after={after.rows}, events before="
        f"{before.events} after={after.events}, ratings before={before.ratings} after="
        f"{after.ratings}, dead letters {after.dead_letters}"
    )
    assert (after.tracks, after.events, after.ratings) == (wanted, before.events, before.ratings)
    assert after.rows == dict.fromkeys(after.rows, wanted)
    assert after.dead_letters == 0
    assert max(times.values()) < ANSWER_SECONDS
    asyncio.run(faults.check_every_write_is_there())
    pids_after = faults.service_pids()
    assert pids_after.pop("vectorstore") == new.process.proc.pid
    assert pids_after == pids, "a service other than the vector store was restarted"
