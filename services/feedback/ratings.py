"""Blind similarity ratings from the dashboard: validated, stored durably, listed by version.

A rater sees a seed track and two lists of its neighbours from two encoder versions (which
version is on which side is hidden), picks the more similar list and may score single
neighbours 1..5. Ratings are the product's most precious data: they cannot be recomputed.
So they are stored as whole JSON documents that are never changed, never expire and are
never overwritten (re-submitting an id is a no-op), in Redis with AOF.

Redis key layout (``P`` is the prefix, default ``hearby:{feedback}``)::

    P:rating:<rating_id>  STRING  the rating as JSON (schema 1): rating_id, rater_id,
        trial_id, seed_track_id, left/right {version, track_ids}, preference
        (left|right|tie), neighbour_scores [{track_id, side, score}], time_us (when it was
        made, microseconds since the epoch, UTC). No TTL.
    P:ratings             ZSET    rating ids scored by time_us (listing order).

A submit returns once Redis has applied it; how soon it reaches disk is the deployment's
AOF fsync policy (the local stack's redis-server fsyncs before replying, see
:mod:`services.common.redis_server`; ``everysec`` can lose the last second or two). Every
call raises :class:`~services.common.errors.Unavailable` while Redis cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from services.common.errors import InvalidArgument
from services.common.names import check_track_id, check_version_name
from services.common.redis_errors import reaching_redis, redis_address

DEFAULT_PREFIX = "hearby:{feedback}"
SCHEMA = 1
# A rating id names a Redis key; a UUID is 36 characters.
RATING_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_ID_CHARS = 128
# The dashboard shows ten or so neighbours per side; this only stops garbage.
MAX_LIST_TRACKS = 100
MIN_SCORE, MAX_SCORE = 1, 5
# Ratings fetched per MGET when listing.
_PAGE = 500


class Preference(enum.StrEnum):
    """Which list the rater found more similar to the seed."""

    LEFT = "left"
    RIGHT = "right"
    TIE = "tie"


class Side(enum.StrEnum):
    """Which list a neighbour was shown in."""

    LEFT = "left"
    RIGHT = "right"


@dataclass(frozen=True)
class ShownList:
    """One list as shown to the rater.

    Args:
        version: The encoder version behind it (hidden from the rater while rating).
        track_ids: Track ids in the order shown (1..100, no repeats).
    """

    version: str
    track_ids: tuple[str, ...]


@dataclass(frozen=True)
class NeighbourScore:
    """A rater's score for one neighbour.

    Args:
        track_id: The neighbour; it must be in the list of ``side``.
        side: ``"left"`` or ``"right"``.
        score: 1 (not similar) .. 5 (very similar).
    """

    track_id: str
    side: Side
    score: int


@dataclass(frozen=True)
class Rating:
    """One blind similarity rating.

    Args:
        rating_id: Unique, client-chosen id (e.g. a UUID; 1..128 characters of
            ``[A-Za-z0-9._:-]``); re-submitting it is a no-op.
        rater_id: Who rated (1..128 characters).
        trial_id: The trial (seed + version pair + side assignment); two raters of one
            trial measure agreement (1..128 characters).
        seed_track_id: The seed track.
        left: The left list as shown.
        right: The right list as shown; its version differs from the left's.
        preference: The list found more similar.
        neighbour_scores: Optional per-neighbour scores, at most one per (track, side).
        time: When it was made (UTC); None means now. A naive datetime is taken as UTC.
    """

    rating_id: str
    rater_id: str
    trial_id: str
    seed_track_id: str
    left: ShownList
    right: ShownList
    preference: Preference
    neighbour_scores: tuple[NeighbourScore, ...] = ()
    time: dt.datetime | None = None

    def compares(self, version_a: str, version_b: str) -> bool:
        """True if the two lists came from these two versions, on either side."""
        return {self.left.version, self.right.version} == {version_a, version_b}


def parse_preference(value: str, where: str = "rating.preference") -> Preference:
    """``value`` as a Preference.

    Raises:
        InvalidArgument: It is not left, right or tie (e.g. unspecified).
    """
    try:
        return Preference(value)
    except ValueError:
        raise InvalidArgument(
            f"{where} must be left, right or tie, got {str(value)[:40]!r}"
        ) from None


def parse_side(value: str, where: str) -> Side:
    """``value`` as a Side.

    Raises:
        InvalidArgument: It is not ``left`` or ``right``.
    """
    try:
        return Side(value)
    except ValueError:
        raise InvalidArgument(
            f"{where} must be 'left' or 'right', got {str(value)[:40]!r}"
        ) from None


def _check_text_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"{what} must be 1..{MAX_ID_CHARS} characters, got {str(value)[:140]!r}"
        )


def _check_list(shown: ShownList, where: str) -> None:
    try:
        check_version_name(shown.version)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}.version: {exc.message}") from None
    if not 1 <= len(shown.track_ids) <= MAX_LIST_TRACKS:
        raise InvalidArgument(
            f"{where}.track_ids must list 1..{MAX_LIST_TRACKS} tracks, got {len(shown.track_ids)}"
        )
    for i, track_id in enumerate(shown.track_ids):
        check_track_id(track_id, f"{where}.track_ids[{i}]")
    if len(set(shown.track_ids)) != len(shown.track_ids):
        raise InvalidArgument(f"{where}.track_ids lists a track more than once")


def _utc(time: dt.datetime | None) -> dt.datetime:
    if time is None:
        return dt.datetime.now(dt.UTC)
    if time.tzinfo is None:
        return time.replace(tzinfo=dt.UTC)
    return time.astimezone(dt.UTC)


def check_rating(rating: Rating) -> Rating:
    """Validates a rating and fills in its time.

    Returns:
        The rating with enums parsed, tuples for lists and ``time`` set (now if None),
        in UTC.

    Raises:
        InvalidArgument: The message names the field (``rating.neighbour_scores[2].score``)
            and the problem.
    """
    if not isinstance(rating.rating_id, str) or not RATING_ID.fullmatch(rating.rating_id):
        raise InvalidArgument(
            f"rating.rating_id {str(rating.rating_id)[:140]!r} must be 1..128 characters of "
            "A-Z, a-z, 0-9, '.', '_', ':' and '-' (e.g. a UUID)"
        )
    _check_text_id(rating.rater_id, "rating.rater_id")
    _check_text_id(rating.trial_id, "rating.trial_id")
    check_track_id(rating.seed_track_id, "rating.seed_track_id")
    left = ShownList(rating.left.version, tuple(rating.left.track_ids))
    right = ShownList(rating.right.version, tuple(rating.right.track_ids))
    _check_list(left, "rating.left")
    _check_list(right, "rating.right")
    if left.version == right.version:
        raise InvalidArgument(
            f"rating.left.version and rating.right.version are both {left.version!r}; a "
            "rating compares two different versions"
        )
    preference = parse_preference(rating.preference)
    lists = {Side.LEFT: set(left.track_ids), Side.RIGHT: set(right.track_ids)}
    scores = []
    seen: set[tuple[str, Side]] = set()
    for i, entry in enumerate(rating.neighbour_scores):
        where = f"rating.neighbour_scores[{i}]"
        side = parse_side(entry.side, f"{where}.side")
        if entry.track_id not in lists[side]:
            raise InvalidArgument(
                f"{where}.track_id {str(entry.track_id)[:140]!r} is not in the {side} list"
            )
        score = entry.score
        if (
            not isinstance(score, int)
            or isinstance(score, bool)
            or not (MIN_SCORE <= score <= MAX_SCORE)
        ):
            raise InvalidArgument(
                f"{where}.score must be an integer in {MIN_SCORE}..{MAX_SCORE}, got {score!r}"
            )
        if (entry.track_id, side) in seen:
            raise InvalidArgument(f"{where} scores {entry.track_id!r} on the {side} again")
        seen.add((entry.track_id, side))
        scores.append(NeighbourScore(entry.track_id, side, score))
    return replace(
        rating,
        left=left,
        right=right,
        preference=preference,
        neighbour_scores=tuple(scores),
        time=_utc(rating.time),
    )


def _micros(time: dt.datetime) -> int:
    return (time - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def rating_to_json(rating: Rating) -> str:
    """The stored form of a checked rating (see the module docstring)."""
    document = {
        "schema": SCHEMA,
        "rating_id": rating.rating_id,
        "rater_id": rating.rater_id,
        "trial_id": rating.trial_id,
        "seed_track_id": rating.seed_track_id,
        "left": {"version": rating.left.version, "track_ids": list(rating.left.track_ids)},
        "right": {"version": rating.right.version, "track_ids": list(rating.right.track_ids)},
        "preference": rating.preference.value,
        "neighbour_scores": [
            {"track_id": s.track_id, "side": s.side.value, "score": s.score}
            for s in rating.neighbour_scores
        ],
        "time_us": _micros(_utc(rating.time)),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def rating_from_json(text: str) -> Rating:
    """A rating from its stored form."""
    data: Mapping[str, Any] = json.loads(text)
    return Rating(
        rating_id=data["rating_id"],
        rater_id=data["rater_id"],
        trial_id=data["trial_id"],
        seed_track_id=data["seed_track_id"],
        left=ShownList(data["left"]["version"], tuple(data["left"]["track_ids"])),
        right=ShownList(data["right"]["version"], tuple(data["right"]["track_ids"])),
        preference=Preference(data["preference"]),
        neighbour_scores=tuple(
            NeighbourScore(s["track_id"], Side(s["side"]), int(s["score"]))
            for s in data["neighbour_scores"]
        ),
        time=dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        + dt.timedelta(microseconds=int(data["time_us"])),
    )


# KEYS: rating key, ratings zset. ARGV: rating JSON, time_us, rating id.
# Returns 1 if stored, 0 if a rating with this id exists (it is left unchanged).
_SUBMIT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class RatingStore:
    """Similarity ratings in Redis (see the module docstring).

    Args:
        redis: An async Redis client created with ``decode_responses=True``.
        prefix: Key prefix; keep the ``{...}`` hash tag so every key shares a Cluster slot.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._index = f"{prefix}:ratings"
        self._submit = redis.register_script(_SUBMIT)
        self._where = f"the feedback Redis at {redis_address(redis)}"

    def _key(self, rating_id: str) -> str:
        return f"{self._prefix}:rating:{rating_id}"

    async def submit(self, rating: Rating) -> bool:
        """Stores a rating, once: the same ``rating_id`` again is a no-op.

        The first stored rating of an id wins, even if a later one differs: a retry must
        not change what was judged.

        Returns:
            True if this call stored it, False if the id was stored before.

        Raises:
            InvalidArgument: The rating is invalid (the message names the field).
            Unavailable: Redis cannot be reached.
        """
        checked = check_rating(rating)
        async with reaching_redis(self._where):
            created = await self._submit(
                keys=[self._key(checked.rating_id), self._index],
                args=[rating_to_json(checked), _micros(_utc(checked.time)), checked.rating_id],
            )
        return bool(created)

    async def list(self, version_a: str = "", version_b: str = "") -> list[Rating]:
        """Ratings, oldest first (equal times in rating id order).

        Reads every rating and filters here: ratings are made by hand, so even years of
        them are a few MB.

        Args:
            version_a: With ``version_b``: only ratings comparing these two versions, on
                either side. Both empty: all ratings.
            version_b: See ``version_a``.

        Raises:
            InvalidArgument: Only one version given, both equal, or a bad version name.
            Unavailable: Redis cannot be reached.
        """
        if bool(version_a) != bool(version_b):
            raise InvalidArgument("give both version_a and version_b, or neither")
        if version_a:
            check_version_name(version_a)
            check_version_name(version_b)
            if version_a == version_b:
                raise InvalidArgument(
                    f"version_a and version_b are both {version_a!r}; ratings compare two "
                    "different versions"
                )
        async with reaching_redis(self._where):
            ids = await self._redis.zrange(self._index, 0, -1)
            documents: list[str | None] = []
            for start in range(0, len(ids), _PAGE):
                keys = [self._key(i) for i in ids[start : start + _PAGE]]
                documents.extend(await self._redis.mget(keys))
        ratings = [rating_from_json(d) for d in documents if d is not None]
        if version_a:
            ratings = [r for r in ratings if r.compares(version_a, version_b)]
        return ratings
