"""EventLog over the real Redis: validation, dedupe, history, popularity, arm attribution."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.common import redis_client
from services.common.errors import InvalidArgument, Unavailable
from services.common.redis_server import RedisServer
from services.control.ab_report import ArmCounts
from services.feedback.events import (
    EventLog,
    EventType,
    Impression,
    UserEvent,
    check_event,
)

PREFIX = "hearby:{feedback}"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def play(track: str = "t1", user: str = "u1", **changes) -> UserEvent:
    fields = {"user_id": user, "track_id": track, "type": EventType.PLAY, **changes}
    return UserEvent(**fields)


def impression(
    request_id: str = "req1",
    user: str = "u1",
    experiment: str = "exp",
    arm: str = "treatment",
    tracks: tuple[str, ...] = ("t1", "t2", "t3"),
) -> Impression:
    return Impression(request_id, user, "v2", experiment, arm, tracks)


# --- validation ------------------------------------------------------------------------------


def test_check_event_fills_in_now_when_the_time_is_unset():
    before = dt.datetime.now(dt.UTC)
    event = check_event(play())
    assert event.time is not None and before <= event.time <= dt.datetime.now(dt.UTC)


def test_check_event_reads_a_naive_time_as_utc():
    event = check_event(play(time=dt.datetime(2026, 3, 1, 12, 0)))
    assert event.time == T0


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"user_id": ""}, "events[0].user_id must be a string of 1..128"),
        ({"user_id": "u" * 129}, "events[0].user_id must be a string of 1..128"),
        ({"track_id": "no spaces"}, "events[0].track_id 'no spaces' is not a valid track id"),
        ({"type": "listen"}, "events[0].type 'listen' is not one of play, skip"),
        ({"position_seconds": -1.0}, r"events\[0\].position_seconds must be a finite number"),
        ({"position_seconds": math.nan}, r"events\[0\].position_seconds must be a finite"),
        ({"position_seconds": math.inf}, r"events\[0\].position_seconds must be a finite"),
        ({"request_id": "r" * 129}, r"events\[0\].request_id must be a string of 0..128"),
        ({"event_id": "e" * 129}, r"events\[0\].event_id must be a string of 0..128"),
    ],
)
def test_check_event_rejects_a_bad_field_naming_it(changes, problem):
    with pytest.raises(InvalidArgument, match=problem.replace("[0]", r"\[0\]")):
        check_event(play(**changes), "events[0]")


async def test_record_rejects_the_whole_batch_naming_the_bad_index(event_log, async_redis):
    batch = [play("t1"), play("t2"), play("bad id"), play("t4")]
    with pytest.raises(InvalidArgument, match=r"events\[2\]\.track_id 'bad id'"):
        await event_log.record(batch)
    assert await async_redis.xlen(f"{PREFIX}:events") == 0
    assert await event_log.history("u1") == []


async def test_record_rejects_more_than_1000_events(event_log):
    with pytest.raises(InvalidArgument, match="at most 1000 events per call, got 1001"):
        await event_log.record([play()] * 1001)


async def test_record_of_an_empty_batch_stores_nothing(event_log):
    assert await event_log.record([]) == 0


async def test_record_impression_rejects_an_experiment_without_an_arm(event_log):
    with pytest.raises(InvalidArgument, match=r"impression\.arm '' must be 1\.\.32"):
        await event_log.record_impression(impression(arm=""))
    with pytest.raises(InvalidArgument, match="version name 'V 2' is invalid"):
        await event_log.record_impression(Impression("r", "u1", "V 2", "", "", ()))
    with pytest.raises(InvalidArgument, match=r"impression.track_ids\[1\]"):
        await event_log.record_impression(impression(tracks=("t1", "")))


# --- storing ---------------------------------------------------------------------------------


async def test_record_stores_each_event_in_the_stream_with_its_fields(event_log, async_redis):
    event = play(position_seconds=12.5, request_id="organic-1", time=T0, event_id="e1")
    assert await event_log.record([event]) == 1
    [(_, entry)] = await async_redis.xrange(f"{PREFIX}:events")
    assert entry == {
        "event_id": "e1",
        "user_id": "u1",
        "track_id": "t1",
        "type": "play",
        "position_seconds": "12.5",
        "request_id": "organic-1",
        "time_us": str(int(T0.timestamp()) * 1_000_000),
        # No impression under that request id: attributed to nothing.
        "version": "",
        "experiment": "",
        "arm": "",
    }


async def test_record_skips_an_event_id_stored_before(event_log, async_redis):
    assert await event_log.record([play(event_id="e1"), play("t2", event_id="e2")]) == 2
    # A retry of the same batch plus one new event: only the new one counts.
    batch = [play(event_id="e1"), play("t2", event_id="e2"), play("t3", event_id="e3")]
    assert await event_log.record(batch) == 1
    assert await async_redis.xlen(f"{PREFIX}:events") == 3
    assert sorted(await event_log.popular(10)) == ["t1", "t2", "t3"]
    # The dedupe key expires (30 days by default), so it cannot grow forever.
    ttl = await async_redis.ttl(f"{PREFIX}:event:e1")
    assert 29 * 86400 < ttl <= 30 * 86400


async def test_record_without_event_ids_counts_repeats(event_log):
    assert await event_log.record([play(), play()]) == 2


async def test_history_is_newest_first_and_trimmed_to_its_length(event_log):
    events = [play(f"t{i}", time=T0 + dt.timedelta(seconds=i), event_id=f"e{i}") for i in range(5)]
    await event_log.record(events)
    history = await event_log.history("u1")
    # HISTORY_LENGTH is 3: the two oldest are gone.
    assert [e.track_id for e in history] == ["t4", "t3", "t2"]
    assert history[0] == UserEvent(
        "u1", "t4", EventType.PLAY, 0.0, "", T0 + dt.timedelta(seconds=4), "e4"
    )
    assert [e.track_id for e in await event_log.history("u1", limit=1)] == ["t4"]
    assert await event_log.history("nobody") == []


async def test_history_rejects_a_bad_limit(event_log):
    with pytest.raises(InvalidArgument, match=r"limit must be an integer in 1\.\.1000"):
        await event_log.history("u1", limit=0)


async def test_popular_ranks_likes_over_plays_and_leaves_out_disliked_tracks(event_log):
    await event_log.record(
        [
            play("played"),
            play("liked", type=EventType.LIKE),
            play("completed"),
            play("completed", type=EventType.COMPLETE),
            play("completed", type=EventType.COMPLETE),
            play("skipped", type=EventType.SKIP),
            play("disliked"),
            play("disliked", type=EventType.DISLIKE),
            play("hated", type=EventType.DISLIKE),
        ]
    )
    # completed 3, liked 2, played 1; disliked 0 and hated -1 are not popular; a skip
    # changes nothing, so "skipped" never got a score.
    assert await event_log.popular(10) == ["completed", "liked", "played"]
    assert await event_log.popular(2) == ["completed", "liked"]


# --- impressions and arms --------------------------------------------------------------------


async def test_record_impression_stores_the_impression_with_a_ttl(event_log, async_redis):
    await event_log.record_impression(impression())
    key = f"{PREFIX}:imp:req1"
    stored = await async_redis.hgetall(key)
    assert stored["user_id"] == "u1" and stored["version"] == "v2"
    assert (stored["experiment"], stored["arm"]) == ("exp", "treatment")
    assert stored["track_ids"] == '["t1", "t2", "t3"]'
    assert 0 < await async_redis.ttl(key) <= 60


async def test_arm_counts_count_impressions_shown_tracks_and_distinct_users(event_log):
    await event_log.record_impression(impression("r1", "u1"))
    await event_log.record_impression(impression("r2", "u1", tracks=("t4",)))
    await event_log.record_impression(impression("r3", "u2", arm="control"))
    # A retried write of the same response counts once.
    await event_log.record_impression(impression("r1", "u1"))
    # Responses outside any experiment count for no arm.
    await event_log.record_impression(impression("r4", "u3", experiment="", arm=""))
    assert await event_log.arm_counts("exp") == {
        "control": ArmCounts(users=1, impressions=1, shown=3),
        "treatment": ArmCounts(users=1, impressions=2, shown=4),
    }
    assert await event_log.arm_counts("other") == {}


async def test_events_count_for_the_arm_only_for_tracks_the_impression_showed(event_log):
    await event_log.record_impression(impression("r1", "u1"))
    await event_log.record(
        [
            play("t1", request_id="r1"),
            play("t1", request_id="r1", type=EventType.COMPLETE),
            play("t2", request_id="r1", type=EventType.LIKE),
            play("t3", request_id="r1", type=EventType.SKIP),
            play("t3", request_id="r1", type=EventType.DISLIKE),
            # Not in the impression: the user found it elsewhere.
            play("t9", request_id="r1"),
            # Organic, and a request id that names no impression.
            play("t1"),
            play("t1", request_id="unknown"),
            # Another user quoting u1's request id.
            play("t1", user="u2", request_id="r1"),
        ]
    )
    counts = (await event_log.arm_counts("exp"))["treatment"]
    assert counts == ArmCounts(
        users=1, impressions=1, shown=3, plays=1, likes=1, skips=1, completes=1
    )


async def test_events_of_an_impression_outside_experiments_count_for_no_arm(event_log, async_redis):
    await event_log.record_impression(impression("r1", experiment="", arm=""))
    await event_log.record([play("t1", request_id="r1")])
    assert await event_log.arm_counts("exp") == {}
    [(_, entry)] = await async_redis.xrange(f"{PREFIX}:events")
    # The version that served it is still recorded.
    assert (entry["version"], entry["experiment"], entry["arm"]) == ("v2", "", "")


async def test_stream_entries_carry_the_attribution_of_their_impression(event_log, async_redis):
    await event_log.record_impression(impression("r1"))
    await event_log.record([play("t2", request_id="r1")])
    [(_, entry)] = await async_redis.xrange(f"{PREFIX}:events")
    assert (entry["version"], entry["experiment"], entry["arm"]) == ("v2", "exp", "treatment")


async def test_a_deduplicated_event_counts_for_its_arm_once(event_log):
    await event_log.record_impression(impression("r1"))
    await event_log.record([play("t1", request_id="r1", event_id="e1")])
    await event_log.record([play("t1", request_id="r1", event_id="e1")])
    assert (await event_log.arm_counts("exp"))["treatment"].plays == 1


async def test_events_after_the_impression_expired_count_for_no_arm(event_log, async_redis):
    await event_log.record_impression(impression("r1"))
    await async_redis.delete(f"{PREFIX}:imp:r1")  # what the TTL does
    await event_log.record([play("t1", request_id="r1")])
    assert (await event_log.arm_counts("exp"))["treatment"].plays == 0


async def test_arm_counts_reject_a_bad_experiment_name(event_log):
    with pytest.raises(InvalidArgument, match=r"experiment 'a:b' must be 1\.\.64"):
        await event_log.arm_counts("a:b")


async def test_the_stream_is_trimmed_to_about_its_max_length(async_redis):
    log = EventLog(async_redis, events_max_length=10)
    for _ in range(5):
        await log.record([play() for _ in range(100)])
    # MAXLEN ~ trims whole macro nodes (100 entries by default), so "about" 10.
    assert await async_redis.xlen(f"{PREFIX}:events") <= 200


# --- Redis down ------------------------------------------------------------------------------


async def test_every_call_raises_unavailable_while_redis_is_down(tmp_path: Path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    client: aioredis.Redis = redis_client.connect(server.url, 0.5)
    log = EventLog(client)
    try:
        await log.ping()
        server.stop()
        calls = [
            log.ping(),
            log.record([play()]),
            log.record_impression(impression()),
            log.history("u1"),
            log.popular(5),
            log.arm_counts("exp"),
        ]
        for call in calls:
            with pytest.raises(Unavailable, match=r"feedback Redis at 127.0.0.1:\d+.*retry"):
                await call
    finally:
        server.stop()
        await client.aclose()
