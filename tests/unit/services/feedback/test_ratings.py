"""RatingStore over the real Redis: validation, idempotency, durability form, listing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from services.common import redis_client
from services.common.errors import InvalidArgument, Unavailable
from services.common.redis_server import RedisServer
from services.feedback.ratings import (
    NeighbourScore,
    Preference,
    RatingStore,
    ShownList,
    Side,
    check_rating,
    rating_from_json,
    rating_to_json,
)
from tests.unit.services.feedback.support import T0, rating

PREFIX = "hearby:{feedback}"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"rating_id": ""}, r"rating\.rating_id '' must be 1\.\.128 characters"),
        ({"rating_id": "has space"}, r"rating\.rating_id 'has space'"),
        ({"rater_id": ""}, r"rating\.rater_id must be 1\.\.128"),
        ({"trial_id": "t" * 129}, r"rating\.trial_id must be 1\.\.128"),
        ({"seed_track_id": "a b"}, r"rating\.seed_track_id 'a b' is not a valid track id"),
        ({"left": ShownList("", ("a1",))}, r"rating\.left\.version: version name ''"),
        ({"right": ShownList("v2", ())}, r"rating\.right\.track_ids must list 1\.\.100"),
        ({"right": ShownList("v2", ("b1", "b1"))}, r"rating\.right\.track_ids lists a track"),
        ({"left": ShownList("v1", ("ok", "n o"))}, r"rating\.left\.track_ids\[1\] 'n o'"),
        ({"right": ShownList("v1", ("b1",))}, r"both 'v1'; a rating compares two different"),
        ({"preference": ""}, r"rating\.preference must be left, right or tie, got ''"),
        (
            {"neighbour_scores": (NeighbourScore("a1", "up", 3),)},
            r"neighbour_scores\[0\]\.side must be 'left' or 'right', got 'up'",
        ),
        (
            {"neighbour_scores": (NeighbourScore("b1", Side.LEFT, 3),)},
            r"neighbour_scores\[0\]\.track_id 'b1' is not in the left list",
        ),
        (
            {"neighbour_scores": (NeighbourScore("a1", Side.LEFT, 6),)},
            r"neighbour_scores\[0\]\.score must be an integer in 1\.\.5, got 6",
        ),
        (
            {"neighbour_scores": (NeighbourScore("a1", Side.LEFT, 0),)},
            r"neighbour_scores\[0\]\.score must be an integer in 1\.\.5, got 0",
        ),
        (
            {
                "neighbour_scores": (
                    NeighbourScore("a1", Side.LEFT, 3),
                    NeighbourScore("a1", Side.LEFT, 4),
                )
            },
            r"neighbour_scores\[1\] scores 'a1' on the left again",
        ),
    ],
)
def test_check_rating_rejects_a_bad_field_naming_it(changes, problem):
    with pytest.raises(InvalidArgument, match=problem):
        check_rating(rating(**changes))


def test_check_rating_accepts_string_values_and_fills_in_the_time():
    checked = check_rating(
        rating(
            preference="tie",
            neighbour_scores=(NeighbourScore("b3", "right", 1),),
            time=None,
        )
    )
    assert checked.preference is Preference.TIE
    assert checked.neighbour_scores == (NeighbourScore("b3", Side.RIGHT, 1),)
    assert checked.time is not None and checked.time.tzinfo is not None


def test_a_rating_survives_its_stored_form_unchanged():
    original = check_rating(rating())
    assert rating_from_json(rating_to_json(original)) == original


async def test_submit_stores_a_rating_once_and_a_repeat_changes_nothing(rating_store, async_redis):
    assert await rating_store.submit(rating("r1")) is True
    # A retry, even one that differs, does not overwrite what was judged.
    assert await rating_store.submit(rating("r1", preference=Preference.RIGHT)) is False
    [stored] = await rating_store.list()
    assert stored == check_rating(rating("r1"))
    assert await async_redis.zcard(f"{PREFIX}:ratings") == 1


async def test_ratings_are_stored_as_json_documents_without_a_ttl(rating_store, async_redis):
    await rating_store.submit(rating("r1"))
    key = f"{PREFIX}:rating:r1"
    document = json.loads(await async_redis.get(key))
    assert document["schema"] == 1
    assert document["left"] == {"version": "v1", "track_ids": ["a1", "a2", "a3"]}
    assert document["preference"] == "left"
    assert await async_redis.ttl(key) == -1
    assert await async_redis.ttl(f"{PREFIX}:ratings") == -1


async def test_submit_rejects_an_invalid_rating_and_stores_nothing(rating_store):
    with pytest.raises(InvalidArgument):
        await rating_store.submit(rating(preference="sideways"))
    assert await rating_store.list() == []


async def test_list_returns_ratings_oldest_first(rating_store):
    await rating_store.submit(rating("late", minutes=5))
    await rating_store.submit(rating("early", minutes=1))
    await rating_store.submit(rating("naive", minutes=3, time=dt.datetime(2026, 3, 1, 12, 3)))
    listed = await rating_store.list()
    assert [r.rating_id for r in listed] == ["early", "naive", "late"]
    assert listed[0].time == T0 + dt.timedelta(minutes=1)


async def test_list_filters_by_the_version_pair_on_either_side(rating_store):
    await rating_store.submit(rating("ab", ("va", "vb"), minutes=1))
    await rating_store.submit(rating("ba", ("vb", "va"), minutes=2))
    await rating_store.submit(rating("ac", ("va", "vc"), minutes=3))
    assert [r.rating_id for r in await rating_store.list("va", "vb")] == ["ab", "ba"]
    assert [r.rating_id for r in await rating_store.list("vb", "va")] == ["ab", "ba"]
    assert [r.rating_id for r in await rating_store.list("vc", "va")] == ["ac"]
    assert await rating_store.list("vb", "vc") == []


@pytest.mark.parametrize(
    ("version_a", "version_b", "problem"),
    [
        ("va", "", "give both version_a and version_b, or neither"),
        ("", "vb", "give both version_a and version_b, or neither"),
        ("va", "va", "both 'va'"),
        ("va", "V B", "version name 'V B' is invalid"),
    ],
)
async def test_list_rejects_a_bad_version_filter(rating_store, version_a, version_b, problem):
    with pytest.raises(InvalidArgument, match=problem):
        await rating_store.list(version_a, version_b)


async def test_list_reads_more_ratings_than_one_page(rating_store):
    for i in range(501):
        await rating_store.submit(rating(f"r{i:03d}", minutes=i))
    listed = await rating_store.list()
    assert len(listed) == 501 and listed[-1].rating_id == "r500"


async def test_the_store_raises_unavailable_while_redis_is_down(tmp_path: Path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = redis_client.connect(server.url, 0.5)
    store = RatingStore(client)
    try:
        assert await store.submit(rating("r1")) is True
        server.stop()
        with pytest.raises(Unavailable, match=r"feedback Redis at 127.0.0.1:\d+.*retry"):
            await store.submit(rating("r2"))
        with pytest.raises(Unavailable):
            await store.list()
        # Restarted on the same data dir: the AOF brought the rating back.
        server = RedisServer(tmp_path / "redis", port=server.port)
        server.start()
        assert [r.rating_id for r in await store.list()] == ["r1"]
    finally:
        server.stop()
        await client.aclose()
