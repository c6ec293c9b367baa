"""Fault flow: an ingest worker is killed with SIGKILL while it processes a submitted batch.

A batch of tracks is submitted; as soon as worker ``ingest-1`` holds an entry it has not
acknowledged, it is killed (no ack, no cleanup) and ``hearby up``'s supervisor starts it
again under its consumer name, so it resumes its own pending entry at once. In the end
every track is stored exactly once in each version, nothing is pending, nothing was
dead-lettered, no other process was restarted, and the events and ratings from before the
fault are all there. (``tests/e2e/test_ingest_two_versions.py`` kills a worker in a larger
catalog; this flow counts around the kill like the other faults.)
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hearby.up import Supervisor
from tests.e2e.faults.conftest import FaultStack
from tests.e2e.support import ingest_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
BATCH = 8
VICTIM = "ingest-1"


async def _victim_holds_an_entry(faults: FaultStack, timeout: float = 120) -> int:
    """Waits until the victim has an entry delivered but not acknowledged; how many it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await ingest_status(faults.stack)
        held = {c.name: c.pending for c in status.consumers}.get(VICTIM, 0)
        if held:
            return held
        assert status.stream_length, f"the batch was worked off before {VICTIM} took an entry"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{VICTIM} took no entry within {timeout:.0f} s")


def test_a_worker_killed_mid_batch_leaves_every_track_stored_once(faults: FaultStack) -> None:
    asyncio.run(faults.settle())
    asyncio.run(faults.write_feedback("worker"))
    before = asyncio.run(faults.counts())
    assert (before.tracks, before.events, before.ratings) == faults.acknowledged()
    pids = faults.service_pids()
    old_pid = pids.pop(VICTIM)

    asyncio.run(faults.submit(faults.take(BATCH)))
    held = asyncio.run(_victim_holds_an_entry(faults))
    faults.stack.worker(1).kill()  # SIGKILL: no ack, no cleanup
    at_kill = asyncio.run(faults.counts())
    faults.say(
        f"worker: {VICTIM} (pid {old_pid}) killed holding {held} unacknowledged entr"
        f"{'y' if held == 1 else 'ies'}; at the kill: {at_kill.line()}"
    )
    assert at_kill.stream > 0, "the batch was done before the kill: nothing to recover"
    # What `hearby up` does: its supervisor starts the dead worker again under its name.
    assert Supervisor(faults.stack).check() == [VICTIM]

    after = asyncio.run(faults.settle())
    wanted = before.tracks + BATCH
    faults.say(f"  just before the batch: {before.line()}")
    faults.say(f"  after, settled:        {after.line()}")
    faults.say(
        f"  tracks before={before.tracks} (+{BATCH} in the batch) after={after.tracks}, rows "
        f"after={after.rows}, events before={before.events} after={after.events}, ratings "
        f"before={before.ratings} after={after.ratings}, pending {after.pending}, dead "
        f"letters {after.dead_letters}"
    )
    assert (after.tracks, after.events, after.ratings) == (wanted, before.events, before.ratings)
    assert after.rows == dict.fromkeys(after.rows, wanted)
    assert (after.stream, after.pending, after.dead_letters) == (0, 0, 0)
    asyncio.run(faults.check_every_write_is_there())
    pids_after = faults.service_pids()
    assert pids_after.pop(VICTIM) != old_pid
    assert pids_after == pids, "a process other than the killed worker was restarted"
