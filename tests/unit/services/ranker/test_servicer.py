"""The Session stream's one-slot mailbox: a slow reader gets the newest update only."""

from __future__ import annotations

import asyncio

from hearby.ranker.v1 import ranker_pb2
from services.ranker.servicer import LatestUpdate


def _update(events_seen: int) -> ranker_pb2.SessionResponse:
    return ranker_pb2.SessionResponse(events_seen=events_seen)


async def test_latest_keeps_only_the_newest_unread_update_for_a_slow_reader() -> None:
    latest = LatestUpdate()
    for seen in range(5):
        latest.put(_update(seen))
    got = await latest.get()
    assert got is not None and got.events_seen == 4
    latest.close()
    assert await latest.get() is None


async def test_latest_hands_over_each_update_to_a_waiting_reader_then_ends_on_close() -> None:
    latest = LatestUpdate()
    reader = asyncio.create_task(latest.get())
    await asyncio.sleep(0)
    latest.put(_update(1))
    first = await reader
    assert first is not None and first.events_seen == 1
    latest.put(_update(2))
    latest.close()
    second = await latest.get()
    assert second is not None and second.events_seen == 2  # drained before the end
    assert await latest.get() is None
